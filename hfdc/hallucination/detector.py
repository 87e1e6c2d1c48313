"""Budget-aware two-stage hallucination detector (Xue et al. 2025, "Verify when Uncertain", arXiv 2502.15845).

Stage 1 scores every question with a self-consistency combiner s = P(hallucination | self features).
Questions with tau_low <= s <= tau_high (the uncertain band) go to the verifier; stage 2 scores them with
the combiner over self + cross features. tau_low, tau_high are fitted on labelled validation data so that
exactly round(budget * n) validation questions fall in the band: among all bands of that many consecutive
validation questions (ordered by s), the one with the best validation AUROC of the two-stage score.
Ties in s are broken by a seeded uniform key u, i.e. the comparison is on (s, u).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from huggingface_hub import ModelHubMixin, hf_hub_download

from hfdc.hallucination.features import CROSS_FEATURES, SELF_FEATURES
from hfdc.hallucination.metrics import auroc

DETECTOR_FILE = "detector.json"


class LogisticCombiner:
    """Supervised combiner p = sigmoid(w . (x - mean) / scale + b), fitted by scikit-learn's LogisticRegression."""

    def __init__(self, mean=None, scale=None, coef=None, intercept: float = 0.0):
        self.mean, self.scale, self.coef = (
            None if v is None else np.asarray(v, dtype=np.float64) for v in (mean, scale, coef)
        )
        self.intercept = float(intercept)

    def fit(self, x: np.ndarray, labels: np.ndarray, seed: int = 0) -> LogisticCombiner:
        from sklearn.linear_model import LogisticRegression

        self.mean = x.mean(0)
        std = x.std(0)
        self.scale = np.where(std > 0, std, 1.0)
        model = LogisticRegression(C=1.0, max_iter=1000, random_state=seed).fit((x - self.mean) / self.scale, labels)
        self.coef, self.intercept = model.coef_[0].astype(np.float64), float(model.intercept_[0])
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(hallucination) per row of x."""
        if self.coef is None:
            raise RuntimeError("LogisticCombiner is not fitted; call fit(x, labels) first")
        if x.ndim != 2 or x.shape[1] != len(self.coef):
            raise ValueError(f"features must have shape [n, {len(self.coef)}], got {x.shape}")
        return 1.0 / (1.0 + np.exp(-(((x - self.mean) / self.scale) @ self.coef + self.intercept)))

    def to_dict(self) -> dict:
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }


@dataclass
class Detection:
    """Output of TwoStageDetector.predict: final scores, stage-1 scores, which questions called the verifier."""

    scores: np.ndarray
    self_scores: np.ndarray
    called_verifier: np.ndarray

    @property
    def verifier_calls(self) -> int:
        return int(self.called_verifier.sum())


def _check_budget(budget: float) -> float:
    if not 0.0 <= float(budget) <= 1.0:
        raise ValueError(f"budget={budget} must be a fraction of questions in [0, 1]")
    return float(budget)


def _lex_less(s, u, bound) -> np.ndarray:
    return (s < bound[0]) | ((s == bound[0]) & (u < bound[1]))


class TwoStageDetector(ModelHubMixin, library_name="hfdc", tags=["hallucination-detection", "hfdc"]):
    """Self-consistency first, the verifier only for the uncertain band; ``fit`` on validation data for a ``budget``.

    ``budget`` is the fraction of questions allowed to call the verifier; ``seed`` draws the tie-break keys.
    """

    def __init__(self, budget: float = 0.5, seed: int = 0):
        self.budget = _check_budget(budget)
        self.seed = seed
        self.self_combiner = LogisticCombiner()
        self.cross_combiner = LogisticCombiner()
        self.low: tuple[float, float] | None = None
        self.high: tuple[float, float] | None = None
        self.validation: dict = {}

    @property
    def thresholds(self) -> tuple[float, float] | None:
        """(tau_low, tau_high) on the self score; None when the budget sends no question to the verifier."""
        return None if self.low is None else (self.low[0], self.high[0])

    def tie_break(self, n: int) -> np.ndarray:
        """Seeded uniform keys that order questions with equal self scores."""
        return np.random.default_rng(self.seed).random(n)

    def fit(self, x_self: np.ndarray, x_cross: np.ndarray, labels, budget: float | None = None) -> TwoStageDetector:
        """Fit both combiners and the band (tau_low, tau_high) holding round(budget * n) validation questions."""
        x_self, x_cross, labels = self._check_fit(x_self, x_cross, labels)
        self.budget = self.budget if budget is None else _check_budget(budget)
        self.self_combiner.fit(x_self, labels, self.seed)
        self.cross_combiner.fit(np.hstack([x_self, x_cross]), labels, self.seed)
        s = self.self_combiner.predict_proba(x_self)
        c = self.cross_combiner.predict_proba(np.hstack([x_self, x_cross]))
        self.fit_band(s, c, labels)
        return self

    def fit_band(self, s: np.ndarray, c: np.ndarray, labels: np.ndarray) -> None:
        """Choose the band of round(budget * n) consecutive questions (ordered by (s, u)) that maximises the
        validation AUROC of the two-stage score (c inside the band, s outside)."""
        n = len(s)
        u = self.tie_break(n)
        order = np.lexsort((u, s))
        k = int(round(self.budget * n))
        best_start, best_auc = 0, -1.0
        if 0 < k < n:
            for start in range(n - k + 1):
                mixed = s.copy()
                window = order[start : start + k]
                mixed[window] = c[window]
                value = auroc(mixed, labels)
                if value > best_auc + 1e-12:
                    best_start, best_auc = start, value
        self.low = self.high = None
        if k > 0:
            first, last = order[best_start], order[best_start + k - 1]
            self.low = (-np.inf, 0.0) if best_start == 0 else (float(s[first]), float(u[first]))
            self.high = (np.inf, 1.0) if best_start + k == n else (float(s[last]), float(u[last]))
        called = self.route(s)
        mixed = np.where(called, c, s)
        self.validation = {
            "n": n,
            "verifier_fraction": float(called.mean()),
            "auroc_self": auroc(s, labels),
            "auroc_cross": auroc(c, labels),
            "auroc_two_stage": auroc(mixed, labels),
        }

    def route(self, self_scores: np.ndarray) -> np.ndarray:
        """Boolean mask: which questions fall in the band and call the verifier."""
        s = np.asarray(self_scores, dtype=np.float64)
        if self.low is None:
            return np.zeros(len(s), dtype=bool)
        u = self.tie_break(len(s))
        return ~_lex_less(s, u, self.low) & ~_lex_less(self.high[0], self.high[1], (s, u))

    def predict(self, x_self: np.ndarray, x_cross=None) -> Detection:
        """Two-stage scores. ``x_cross``: cross features for all questions, or a callable(indices) -> their
        cross features, called only for the questions routed to the verifier (so only those cost verifier calls).
        """
        x_self = self._check_features(x_self, SELF_FEATURES, "x_self")
        s = self.self_combiner.predict_proba(x_self)
        called = self.route(s)
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
        return Detection(scores=scores, self_scores=s, called_verifier=called)

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
            "self_features": list(SELF_FEATURES),
            "cross_features": list(CROSS_FEATURES),
            "self_combiner": self.self_combiner.to_dict(),
            "cross_combiner": self.cross_combiner.to_dict(),
            "low": None if self.low is None else list(self.low),
            "high": None if self.high is None else list(self.high),
            "validation": self.validation,
        }

    @classmethod
    def from_dict(cls, state: dict) -> TwoStageDetector:
        if state["self_features"] != list(SELF_FEATURES) or state["cross_features"] != list(CROSS_FEATURES):
            raise ValueError("saved detector was fitted on other feature columns than this hfdc version computes")
        detector = cls(budget=state["budget"], seed=state["seed"])
        detector.self_combiner = LogisticCombiner(**state["self_combiner"])
        detector.cross_combiner = LogisticCombiner(**state["cross_combiner"])
        detector.low = None if state["low"] is None else tuple(state["low"])
        detector.high = None if state["high"] is None else tuple(state["high"])
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
