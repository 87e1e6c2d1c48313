"""Evaluate single scores, the self/cross combiners and the two-stage detector over a verifier-budget sweep."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hfdc.hallucination.data import hallucination_labels
from hfdc.hallucination.detector import TwoStageDetector
from hfdc.hallucination.features import CROSS_FEATURES, FEATURE_DIRECTIONS, SELF_FEATURES, compute_features
from hfdc.hallucination.metrics import aurac, auroc
from hfdc.hallucination.sampling import Answers
from hfdc.hallucination.similarity import Similarity

# the unsupervised scores, each a feature read so that higher = more likely hallucination
SINGLE_SCORES = tuple(name for name in (*SELF_FEATURES, *CROSS_FEATURES) if FEATURE_DIRECTIONS[name] != 0)


@dataclass
class LabelledFeatures:
    """Self features [n, 6], cross features [n, 3], hallucination labels [n] and question texts of one split."""

    x_self: np.ndarray
    x_cross: np.ndarray
    labels: np.ndarray
    questions: list[str]

    def column(self, name: str) -> np.ndarray:
        if name in SELF_FEATURES:
            return self.x_self[:, SELF_FEATURES.index(name)]
        return self.x_cross[:, CROSS_FEATURES.index(name)]

    def oriented(self, name: str) -> np.ndarray:
        """Score ``name`` with higher = more likely hallucination (consistency features are negated)."""
        return FEATURE_DIRECTIONS[name] * self.column(name)


def featurize(
    questions: list[str],
    answers: list[Answers],
    golds: list[list[str]],
    similarity: Similarity,
    label_method: str = "exact_match",
    judge=None,
) -> LabelledFeatures:
    """Features of every question and labels (1 = the target's answer is wrong by ``label_method``)."""
    x_self, x_cross = compute_features(
        [a.answer for a in answers],
        [a.samples for a in answers],
        [a.verifier_samples for a in answers],
        similarity,
        questions,
    )
    labels = np.array(hallucination_labels([a.answer for a in answers], golds, label_method, questions, judge))
    return LabelledFeatures(x_self, x_cross, labels, list(questions))


def check_both_classes(split: LabelledFeatures, name: str) -> None:
    """ValueError unless the split holds both correct and hallucinated answers."""
    if len(set(split.labels.tolist())) < 2:
        raise ValueError(
            f"the {name} split has only {'correct' if split.labels.sum() == 0 else 'hallucinated'} answers; "
            "AUROC and the detector need both: use more questions (max_questions / n_validation / n_test)"
        )


def single_score_rows(test: LabelledFeatures) -> list[dict]:
    """AUROC and AURAC on the test split of each unsupervised score, oriented higher = more likely hallucination."""
    check_both_classes(test, "test")
    rows = []
    for name in SINGLE_SCORES:
        score = test.oriented(name)
        rows.append(
            {
                "method": name,
                "paradigm": "cross" if name in CROSS_FEATURES else "self",
                "direction": "higher = hallucination" if FEATURE_DIRECTIONS[name] > 0 else "lower = hallucination",
                "auroc": auroc(score, test.labels),
                "aurac": aurac(score, test.labels),
            }
        )
    return rows


def budget_sweep(
    validation: LabelledFeatures,
    test: LabelledFeatures,
    budgets,
    n_verifier_samples: int,
    seed: int = 0,
    n_folds: int = 5,
) -> list[dict]:
    """Two-stage detector fitted on validation for each budget, scored on test (budget 0 = self combiner,
    budget 1 = full cross-consistency combiner)."""
    check_both_classes(validation, "validation"), check_both_classes(test, "test")
    rows = []
    for budget in budgets:
        detector = TwoStageDetector(budget=budget, seed=seed, n_folds=n_folds)
        detector.fit(validation.x_self, validation.x_cross, validation.labels, validation.questions)
        detection = detector.predict(test.x_self, test.x_cross, test.questions)
        tau = detector.thresholds
        rows.append(
            {
                "method": "two_stage",
                "paradigm": "two_stage",
                "budget": float(budget),
                "auroc": auroc(detection.scores, test.labels),
                "aurac": aurac(detection.scores, test.labels),
                "verifier_fraction": float(detection.called_verifier.mean()),
                "verifier_questions": detection.verifier_calls,
                "verifier_samples": detection.verifier_calls * n_verifier_samples,
                "out_of_range_fraction": float(detection.out_of_range.mean()),
                "validation_verifier_fraction": detector.validation["verifier_fraction"],
                "tau_low": None if tau is None else tau[0],
                "tau_high": None if tau is None else tau[1],
            }
        )
    return rows


def plot_budget_curve(sweep: list[dict], single: list[dict], path: str | Path, title: str = "") -> Path:
    """PNG of test AUROC against the fraction of questions sent to the verifier, with the single-score references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(
        [r["verifier_fraction"] * 100 for r in sweep],
        [r["auroc"] for r in sweep],
        "o-",
        color="C0",
        label="two-stage (self + cross LR)",
    )
    full = next((r["auroc"] for r in sweep if r["budget"] == 1.0), None)
    if full is not None:
        ax.axhline(full, color="C0", ls=":", lw=1, label="full cross-consistency LR")
        ax.axhline(0.97 * full, color="grey", ls=":", lw=1, label="97% of full")
    references = [r for r in single if r["method"] in ("semantic_entropy", "cross_consistency")]
    for row, color in zip(references, ("C1", "C2")):
        ax.axhline(row["auroc"], color=color, ls="--", lw=1, label=f"{row['method']} alone")
    ax.set_xlabel("questions sent to the verifier (%)")
    ax.set_ylabel("test AUROC")
    ax.set_title(title or "Budget-aware two-stage hallucination detection")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
