"""DD-Ranking scores of a distilled data set from evaluation accuracies (Li et al., 2025, arXiv 2505.13300).

Accuracies are fractions in [0, 1]. With ``w`` = ``weight``:

    HLR = Acc(full real data, hard labels) - Acc(distilled, hard labels)          (hard label recovery)
    IOR = Acc(distilled, the method's evaluation) - Acc(random real subset, same evaluation)
    LRS = N(w * IOR - (1 - w) * HLR)                                              (label-robust score)
    ARS = N(w * IOR_with_augmentation + (1 - w) * IOR_without_augmentation)       (augmentation-robust score)
    N(a) = (e^a - e^-1) / (e - e^-1)

With accuracies in [0, 1], HLR and IOR lie in [-1, 1], so does ``a``, and N maps it onto [0, 1]. The ``ddranking``
0.2.0 package feeds percentages into ``exp`` (its a lies in [-100, 100]), so its scores leave [0, 1]; divide its
accuracies by 100 to compare with these.
"""

from __future__ import annotations

import math

import numpy as np


def _values(name: str, value, low: float, high: float, hint: str) -> np.ndarray:
    """``value`` as float64 (scalar or per-run array); a ValueError naming ``name`` outside [low, high] or NaN."""
    array = np.asarray(value, dtype=np.float64)
    if array.size == 0:
        raise ValueError(f"{name} is empty; give one value per evaluation run")
    if np.isnan(array).any() or (array < low).any() or (array > high).any():
        raise ValueError(f"{name}={value!r} must lie in [{low:g}, {high:g}]; {hint}")
    return array


def _accuracy(name: str, value) -> np.ndarray:
    return _values(name, value, 0.0, 1.0, "accuracies are fractions (divide percentages by 100)")


def _difference(name: str, value) -> np.ndarray:
    return _values(
        name, value, -1.0, 1.0, "it is a difference of two accuracies in [0, 1] (divide percentages by 100)"
    )


def _weight(name: str, weight: float) -> float:
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"{name}={weight!r} must lie in [0, 1] (DD-Ranking uses 0.5)")
    return float(weight)


def _out(array: np.ndarray):
    return float(array) if array.ndim == 0 else array


def normalised_exp(a) -> float | np.ndarray:
    """N(a) = (e^a - e^-1) / (e - e^-1): maps a in [-1, 1] onto [0, 1], N(0) = (1 - e^-1) / (e - e^-1)."""
    a = _difference("a", a)
    return _out((np.exp(a) - math.exp(-1.0)) / (math.e - math.exp(-1.0)))


def hlr(full_accuracy, distilled_accuracy) -> float | np.ndarray:
    """Hard label recovery: Acc(full real data, hard labels) - Acc(distilled data, hard labels); lower is better."""
    return _out(_accuracy("full_accuracy", full_accuracy) - _accuracy("distilled_accuracy", distilled_accuracy))


def ior(distilled_accuracy, random_accuracy) -> float | np.ndarray:
    """Improvement over random: Acc(distilled) - Acc(random real subset, same images per class, same evaluation)."""
    return _out(_accuracy("distilled_accuracy", distilled_accuracy) - _accuracy("random_accuracy", random_accuracy))


def lrs(hlr_value, ior_value, weight: float = 0.5) -> float | np.ndarray:
    """Label-robust score N(w * IOR - (1 - w) * HLR) in [0, 1] (per run when given per-run values)."""
    w = _weight("weight", weight)
    return normalised_exp(w * _difference("ior_value", ior_value) - (1 - w) * _difference("hlr_value", hlr_value))


def ars(ior_with_augmentation, ior_without_augmentation, weight: float = 0.5) -> float | np.ndarray:
    """Augmentation-robust score N(w * IOR_aug + (1 - w) * IOR_no_aug) in [0, 1], each IOR from :func:`ior`."""
    w = _weight("weight", weight)
    with_aug = _difference("ior_with_augmentation", ior_with_augmentation)
    return normalised_exp(w * with_aug + (1 - w) * _difference("ior_without_augmentation", ior_without_augmentation))


def mean_std(values) -> tuple[float, float]:
    """Mean and standard deviation (population, ddof=0, as ``ddranking`` reports) of per-run values."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("no evaluation runs to summarise; num_eval must be >= 1")
    return float(array.mean()), float(array.std())
