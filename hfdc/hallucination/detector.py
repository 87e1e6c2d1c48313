"""Budget-aware two-stage hallucination detector (Xue et al. 2025, "Verify when Uncertain", arXiv 2502.15845).

Stage 1 scores every question with a self-consistency combiner s = P(hallucination | self features).
Questions with tau_low <= s <= tau_high (the uncertain band) go to the verifier; stage 2 scores them with
the combiner over self + cross features. Both combiners are monotone logistic regressions (``combiner``).

The band holds exactly round(budget * n) validation questions. It is placed on data the combiners were not
fitted on: out-of-fold scores from ``n_folds``-fold cross-fitting give, among all windows of that many
consecutive questions ordered by s, the one with the best two-stage AUROC (``band``, O(n log n)); the final
combiners are refitted on all validation questions and tau_low, tau_high sit at the same ranks of their
self score. Ties in s are broken by a key u in [0, 1) hashed from (seed, question text), so a question is
routed the same way alone or in any batch; the comparison is on (s, u).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from huggingface_hub import ModelHubMixin, hf_hub_download

from hfdc.hallucination.band import best_window
from hfdc.hallucination.combiner import LogisticCombiner
from hfdc.hallucination.features import CROSS_FEATURES, FEATURE_DIRECTIONS, SELF_FEATURES
from hfdc.hallucination.metrics import auroc

DETECTOR_FILE = "detector.json"
SELF_DIRECTIONS = [FEATURE_DIRECTIONS[name] for name in SELF_FEATURES]
ALL_DIRECTIONS = SELF_DIRECTIONS + [FEATURE_DIRECTIONS[name] for name in CROSS_FEATURES]


@dataclass
class Detection:
    """Output of TwoStageDetector.predict: final scores, stage-1 scores, which questions called the verifier, and
    which questions have a feature outside the range the detector was fitted on (read their scores with care)."""

    scores: np.ndarray
    self_scores: np.ndarray
    called_verifier: np.ndarray
    out_of_range: np.ndarray

    @property
    def verifier_calls(self) -> int:
        """Questions sent to the verifier."""
        return int(self.called_verifier.sum())


def _check_budget(budget: float) -> float:
    if not 0.0 <= float(budget) <= 1.0:
        raise ValueError(f"budget={budget} must be a fraction of questions in [0, 1]")
    return float(budget)


def _lex_less(s, u, bound) -> np.ndarray:
    return (s < bound[0]) | ((s == bound[0]) & (u < bound[1]))


def question_keys(questions: Sequence[str] | None, x_self: np.ndarray, seed: int) -> np.ndarray:
    """Tie-break key per question in [0, 1): sha256 of (seed, question text), or of the self-feature row when no
    text is given. It depends on the question alone, never on its position in a batch."""
    if questions is not None and len(questions) != len(x_self):
        raise ValueError(f"questions has {len(questions)} entries for {len(x_self)} feature rows")
    items = [q.encode() for q in questions] if questions is not None else [row.tobytes() for row in x_self]
    digests = (hashlib.sha256(str(seed).encode() + b"\0" + item).digest() for item in items)
    return np.array([int.from_bytes(d[:8], "big") / 2**64 for d in digests], dtype=np.float64)


def stratified_folds(labels: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold id per question: each class dealt round-robin over the folds in a seeded random order."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), dtype=int)
    for value in (0, 1):
        members = rng.permutation(np.flatnonzero(labels == value))
        folds[members] = np.arange(len(members)) % n_folds
    return folds


class TwoStageDetector(ModelHubMixin, library_name="hfdc", tags=["hallucination-detection", "hfdc"]):
    """Self-consistency first, the verifier only for the uncertain band; ``fit`` on validation data for a ``budget``.

    ``budget`` is the fraction of questions allowed to call the verifier; ``n_folds`` the cross-fitting folds of
    the band; ``seed`` the folds and the tie-break keys.
    """

    def __init__(self, budget: float = 0.5, seed: int = 0, n_folds: int = 5):
        self.budget = _check_budget(budget)
        if n_folds < 2:
            raise ValueError(f"n_folds={n_folds}: cross-fitting needs at least 2 folds")
        self.seed = seed
        self.n_folds = n_folds
        self.self_combiner = LogisticCombiner()
        self.cross_combiner = LogisticCombiner()
        self.low: tuple[float, float] | None = None
        self.high: tuple[float, float] | None = None
        self.feature_range: tuple[list[float], list[float]] | None = None
        self.validation: dict = {}

    @property
    def thresholds(self) -> tuple[float, float] | None:
        """(tau_low, tau_high) on the self score; None when the budget sends no question to the verifier."""
        return None if self.low is None else (self.low[0], self.high[0])

    def fit(
        self, x_self: np.ndarray, x_cross: np.ndarray, labels, questions: Sequence[str] | None = None
    ) -> TwoStageDetector:
        """Fit both combiners and the band (tau_low, tau_high) holding round(budget * n) validation questions,
        placed on out-of-fold scores."""
        x_self, x_cross, labels = self._check_fit(x_self, x_cross, labels)
        x_all = np.hstack([x_self, x_cross])
        minority = int(min(labels.sum(), len(labels) - labels.sum()))
        n_folds = min(self.n_folds, minority)
        if n_folds < 2:
            raise ValueError(
                f"labels hold only {minority} example(s) of one class; cross-fitting the band needs at least 2 "
                "correct and 2 hallucinated answers: use more validation questions"
            )
        folds = stratified_folds(labels, n_folds, self.seed)
        s_out, c_out = np.empty(len(labels)), np.empty(len(labels))
        for fold in range(n_folds):
            train, held = folds != fold, folds == fold
            s_out[held] = (
                LogisticCombiner().fit(x_self[train], labels[train], SELF_DIRECTIONS).predict_proba(x_self[held])
            )
            c_out[held] = (
                LogisticCombiner().fit(x_all[train], labels[train], ALL_DIRECTIONS).predict_proba(x_all[held])
            )
        self.self_combiner.fit(x_self, labels, SELF_DIRECTIONS)
        self.cross_combiner.fit(x_all, labels, ALL_DIRECTIONS)
        self.feature_range = (x_all.min(0).tolist(), x_all.max(0).tolist())
        self._fit_band(s_out, c_out, labels, question_keys(questions, x_self, self.seed), x_self)
        self.validation["n_folds"] = n_folds
        return self

    def _fit_band(self, s_out, c_out, labels, keys, x_self) -> None:
        """Window of k = round(budget * n) questions with the best out-of-fold two-stage AUROC; the thresholds sit
        at the window's ranks in the order of the final self score."""
        n = len(labels)
        k = int(round(self.budget * n))
        start, band_auroc = 0, None
        if 0 < k < n:
            start, band_auroc = best_window(s_out, c_out, labels, np.lexsort((keys, s_out)), k)
        self.low = self.high = None
        if k > 0:
            s = self.self_combiner.predict_proba(x_self)
            order = np.lexsort((keys, s))
            first, last = order[start], order[start + k - 1]
            self.low = (-np.inf, 0.0) if start == 0 else (float(s[first]), float(keys[first]))
            self.high = (np.inf, 1.0) if start + k == n else (float(s[last]), float(keys[last]))
        in_band = np.zeros(n, dtype=bool)
        in_band[np.lexsort((keys, s_out))[start : start + k]] = True
        self.validation = {
            "n": n,
            "verifier_fraction": k / n,
            "auroc_self_out_of_fold": auroc(s_out, labels),
            "auroc_cross_out_of_fold": auroc(c_out, labels),
            "auroc_two_stage_out_of_fold": band_auroc
            if band_auroc is not None
            else auroc(np.where(in_band, c_out, s_out), labels),
        }

    def route(self, self_scores: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Boolean mask: which questions fall in the band (on (s, key)) and call the verifier."""
        s = np.asarray(self_scores, dtype=np.float64)
        if self.low is None:
            return np.zeros(len(s), dtype=bool)
        return ~_lex_less(s, keys, self.low) & ~_lex_less(self.high[0], self.high[1], (s, keys))

    def outside_fitted_range(self, x: np.ndarray, columns: slice) -> np.ndarray:
        """True per row with a feature outside [min, max] of the validation data the detector was fitted on."""
        low, high = (np.asarray(v)[columns] for v in self.feature_range)
        return ((x < low - 1e-9) | (x > high + 1e-9)).any(1)

    def predict(self, x_self: np.ndarray, x_cross=None, questions: Sequence[str] | None = None) -> Detection:
        """Two-stage scores. ``x_cross``: cross features for all questions, or a callable(indices) -> their
        cross features, called only for the questions routed to the verifier (so only those cost verifier calls).
        ``questions`` (texts) give the tie-break keys; without them the keys hash the self-feature rows.
        """
        x_self = self._check_features(x_self, SELF_FEATURES, "x_self")
        s = self.self_combiner.predict_proba(x_self)
        called = self.route(s, question_keys(questions, x_self, self.seed))
        out_of_range = self.outside_fitted_range(x_self, slice(0, len(SELF_FEATURES)))
        scores = s.copy()
        indices = np.flatnonzero(called)
        if len(indices):
            if x_cross is None:
                raise ValueError(
                    f"{len(indices)} questions need the verifier: pass x_cross (an array or a callable(indices))"
                )
            rows = x_cross(indices) if callable(x_cross) else np.asarray(x_cross, dtype=np.float64)[indices]
            rows = self._check_features(rows, CROSS_FEATURES, "x_cross")
            if len(rows) != len(indices):
                raise ValueError(f"x_cross returned {len(rows)} rows for {len(indices)} routed questions")
            scores[indices] = self.cross_combiner.predict_proba(np.hstack([x_self[indices], rows]))
            out_of_range[indices] |= self.outside_fitted_range(rows, slice(len(SELF_FEATURES), None))
        return Detection(scores=scores, self_scores=s, called_verifier=called, out_of_range=out_of_range)

    @staticmethod
    def _check_features(x, names, field: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ValueError(
                f"{field} must have shape [n_questions, {len(names)}] (columns {list(names)}), got {x.shape}"
            )
        if not np.isfinite(x).all():
            raise ValueError(f"{field} contains NaN or inf")
        return x

    def _check_fit(self, x_self, x_cross, labels):
        x_self = self._check_features(x_self, SELF_FEATURES, "x_self")
        x_cross = self._check_features(x_cross, CROSS_FEATURES, "x_cross")
        labels = np.asarray(labels)
        if not (len(x_self) == len(x_cross) == len(labels)):
            raise ValueError(
                f"x_self ({len(x_self)}), x_cross ({len(x_cross)}) and labels ({len(labels)}) differ in length"
            )
        if not np.isin(labels, (0, 1)).all() or len(set(labels.tolist())) < 2:
            raise ValueError("labels must contain both 0 (correct) and 1 (hallucination) to fit the detector")
        return x_self, x_cross, labels.astype(int)

    def to_dict(self) -> dict:
        """Everything needed to predict: combiners, band, feature names, validation figures."""
        if self.self_combiner.coef is None:
            raise RuntimeError("TwoStageDetector is not fitted; call fit(...) first")
        return {
            "budget": self.budget,
            "seed": self.seed,
            "n_folds": self.n_folds,
            "self_features": list(SELF_FEATURES),
            "cross_features": list(CROSS_FEATURES),
            "self_combiner": self.self_combiner.to_dict(),
            "cross_combiner": self.cross_combiner.to_dict(),
            "low": None if self.low is None else list(self.low),
            "high": None if self.high is None else list(self.high),
            "feature_range": self.feature_range,
            "validation": self.validation,
        }

    @classmethod
    def from_dict(cls, state: dict) -> TwoStageDetector:
        if state["self_features"] != list(SELF_FEATURES) or state["cross_features"] != list(CROSS_FEATURES):
            raise ValueError("saved detector was fitted on other feature columns than this hfdc version computes")
        detector = cls(budget=state["budget"], seed=state["seed"], n_folds=state["n_folds"])
        detector.self_combiner = LogisticCombiner(**state["self_combiner"])
        detector.cross_combiner = LogisticCombiner(**state["cross_combiner"])
        detector.low = None if state["low"] is None else tuple(state["low"])
        detector.high = None if state["high"] is None else tuple(state["high"])
        detector.feature_range = tuple(state["feature_range"])
        detector.validation = state["validation"]
        return detector

    def _save_pretrained(self, save_directory: Path) -> None:
        (Path(save_directory) / DETECTOR_FILE).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def _from_pretrained(cls, *, model_id, revision, cache_dir, force_download, local_files_only, token, **kwargs):
        path = Path(model_id) / DETECTOR_FILE
        if not path.is_file():
            path = hf_hub_download(
                model_id,
                DETECTOR_FILE,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                local_files_only=local_files_only,
                token=token,
            )
        return cls.from_dict(json.loads(Path(path).read_text()))
