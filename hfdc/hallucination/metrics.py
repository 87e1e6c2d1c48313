"""Detection metrics: AUROC of a hallucination score, and AURAC (area under the rejection-accuracy curve)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _check(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be 1-d arrays of the same length")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (correct answer) or 1 (hallucination)")
    return scores, labels.astype(int)


def auroc(scores, labels) -> float:
    """P(score of a hallucination > score of a correct answer), ties count 1/2 (Mann-Whitney U / n1 n0)."""
    scores, labels = _check(scores, labels)
    positives, negatives = labels.sum(), (1 - labels).sum()
    if positives == 0 or negatives == 0:
        raise ValueError("AUROC needs both correct (0) and hallucinated (1) answers in labels")
    ranks = rankdata(scores)
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def aurac(scores, labels) -> float:
    """Mean over k = 1..n of the accuracy on the k answers with the lowest score (rejecting the rest).

    Accuracy = fraction of label-0 (correct) answers; answers with tied scores count with their group's mean.
    """
    scores, labels = _check(scores, labels)
    if len(scores) == 0:
        raise ValueError("AURAC needs at least one scored answer")
    order = np.argsort(scores, kind="stable")
    correct = 1.0 - labels[order]
    _, group, counts = np.unique(scores[order], return_inverse=True, return_counts=True)
    expected_correct = (np.bincount(group, weights=correct) / counts)[group]
    accuracy = np.cumsum(expected_correct) / np.arange(1, len(correct) + 1)
    return float(accuracy.mean())
