"""Monotone logistic combiner of consistency features: p = sigmoid(w . (x - mean) / scale + b), sign-constrained w.

Fitted by L-BFGS-B on the L2-penalised log loss sum_i [log(1 + e^{z_i}) - y_i z_i] + ||w||^2 / (2 C)
(scikit-learn's objective), with w_j >= 0 for an uncertainty feature (direction +1), w_j <= 0 for a
consistency feature (direction -1) and w_j free for direction 0. So P(hallucination) never falls when
disagreement grows. A feature that is constant on the training data, or an exact copy of an earlier column
(e.g. the cluster count and the eigenvalue sum under string match), gets weight 0.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit


def duplicate_or_constant(x: np.ndarray) -> np.ndarray:
    """Boolean mask of the columns of x that are constant or equal to an earlier column."""
    drop = x.std(0) == 0
    for j in range(x.shape[1]):
        drop[j] |= any(np.array_equal(x[:, i], x[:, j]) for i in range(j))
    return drop


class LogisticCombiner:
    """Sign-constrained logistic regression; ``directions`` gives +1 / -1 / 0 per feature column."""

    def __init__(self, mean=None, scale=None, coef=None, intercept: float = 0.0, C: float = 1.0):
        self.mean, self.scale, self.coef = (
            None if v is None else np.asarray(v, dtype=np.float64) for v in (mean, scale, coef)
        )
        self.intercept = float(intercept)
        self.C = float(C)

    def fit(self, x: np.ndarray, labels: np.ndarray, directions) -> LogisticCombiner:
        from scipy.optimize import minimize

        directions = np.asarray(directions)
        if len(directions) != x.shape[1]:
            raise ValueError(f"directions has {len(directions)} entries for {x.shape[1]} feature columns")
        y = np.asarray(labels, dtype=np.float64)
        self.mean = x.mean(0)
        std = x.std(0)
        self.scale = np.where(std > 0, std, 1.0)
        keep = ~duplicate_or_constant(x)
        z = ((x - self.mean) / self.scale)[:, keep]

        def loss(theta):
            w, b = theta[:-1], theta[-1]
            logits = z @ w + b
            p = expit(logits)
            value = np.sum(np.logaddexp(0.0, logits) - y * logits) + w @ w / (2 * self.C)
            grad = np.append(z.T @ (p - y) + w / self.C, np.sum(p - y))
            return value, grad

        bounds = [(0.0, None) if d > 0 else (None, 0.0) if d < 0 else (None, None) for d in directions[keep]]
        prior = np.log(y.mean() / (1 - y.mean()))
        theta0 = np.append(np.zeros(int(keep.sum())), prior)
        result = minimize(
            loss,
            theta0,
            jac=True,
            method="L-BFGS-B",
            bounds=[*bounds, (None, None)],
            options={"gtol": 1e-9, "maxiter": 1000},
        )
        self.coef = np.zeros(x.shape[1])
        self.coef[keep] = result.x[:-1]
        self.intercept = float(result.x[-1])
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(hallucination) per row of x; each row is computed on its own (no matrix product, whose rounding can
        depend on the batch), so a question scores the same alone or in any batch."""
        if self.coef is None:
            raise RuntimeError("LogisticCombiner is not fitted; call fit(x, labels, directions) first")
        if x.ndim != 2 or x.shape[1] != len(self.coef):
            raise ValueError(f"features must have shape [n, {len(self.coef)}], got {x.shape}")
        return expit((((x - self.mean) / self.scale) * self.coef).sum(1) + self.intercept)

    def to_dict(self) -> dict:
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "C": self.C,
        }
