"""Evaluate single scores, the self/cross combiners and the two-stage detector over a verifier-budget sweep."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hfdc.hallucination.data import hallucination_labels
from hfdc.hallucination.detector import TwoStageDetector
from hfdc.hallucination.features import CROSS_FEATURES, SELF_FEATURES, compute_features
from hfdc.hallucination.metrics import aurac, auroc
from hfdc.hallucination.sampling import Answers
from hfdc.hallucination.similarity import Similarity

# single scores oriented so that higher = more likely hallucination (+1 keeps, -1 flips the feature)
SINGLE_SCORES = {
    "semantic_entropy": +1,
    "num_clusters": +1,
    "degree": +1,
    "eccentricity": +1,
    "eigenvalue": +1,
    "answer_similarity": -1,
    "cross_consistency": -1,
    "answer_cross_similarity": -1,
}


@dataclass
class LabelledFeatures:
    """Self features [n, 6], cross features [n, 3] and hallucination labels [n] of one split."""

    x_self: np.ndarray
    x_cross: np.ndarray
    labels: np.ndarray

    def column(self, name: str) -> np.ndarray:
        if name in SELF_FEATURES:
            return self.x_self[:, SELF_FEATURES.index(name)]
        return self.x_cross[:, CROSS_FEATURES.index(name)]


def featurize(answers: list[Answers], golds: list[list[str]], similarity: Similarity) -> LabelledFeatures:
    """Features of every question and labels (1 = the target's answer matches no gold answer)."""
    x_self, x_cross = compute_features(
        [a.answer for a in answers], [a.samples for a in answers], [a.verifier_samples for a in answers], similarity
    )
    labels = np.array(hallucination_labels([a.answer for a in answers], golds))
    return LabelledFeatures(x_self, x_cross, labels)


def _check_both_classes(split: LabelledFeatures, name: str) -> None:
    if len(set(split.labels.tolist())) < 2:
        raise ValueError(
            f"the {name} split has only {'correct' if split.labels.sum() == 0 else 'hallucinated'} answers; "
            "AUROC and the detector need both: use more questions (max_questions / n_validation / n_test)"
        )


def single_score_rows(test: LabelledFeatures) -> list[dict]:
    """AUROC and AURAC on the test split of each unsupervised score."""
    _check_both_classes(test, "test")
    rows = []
    for name, sign in SINGLE_SCORES.items():
        score = sign * test.column(name)
        paradigm = "cross" if name in CROSS_FEATURES else "self"
        rows.append(
            {
                "method": name,
                "paradigm": paradigm,
                "auroc": auroc(score, test.labels),
                "aurac": aurac(score, test.labels),
            }
        )
    return rows


def budget_sweep(
    validation: LabelledFeatures, test: LabelledFeatures, budgets, n_verifier_samples: int, seed: int = 0
) -> list[dict]:
    """Two-stage detector fitted on validation for each budget, scored on test (budget 0 = self combiner,
    budget 1 = full cross-consistency combiner)."""
    _check_both_classes(validation, "validation"), _check_both_classes(test, "test")
    rows = []
    for budget in budgets:
        detector = TwoStageDetector(budget=budget, seed=seed)
        detector.fit(validation.x_self, validation.x_cross, validation.labels)
        detection = detector.predict(test.x_self, test.x_cross)
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
