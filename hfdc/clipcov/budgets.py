"""Class-proportional budgets that sum exactly to round(fraction * N) (largest remainder)."""

from __future__ import annotations

import numpy as np


def check_fraction(fraction: float, size: int) -> int:
    """The total budget round(fraction * size); a ValueError when fraction is outside (0, 1] or selects nothing."""
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    total = int(round(fraction * size))
    if total < 1:
        raise ValueError(f"fraction={fraction} of {size} examples selects nothing; raise the fraction")
    return total


def class_budgets(class_sizes: np.ndarray, fraction: float) -> np.ndarray:
    """budget_c = floor(q_c) plus one for the largest remainders, q_c = total * n_c / N; sums to total.

    Each budget stays <= its class size; equal remainders go to the lower class id.
    """
    sizes = np.asarray(class_sizes, dtype=np.int64)
    total = check_fraction(fraction, int(sizes.sum()))
    quota = sizes * total / sizes.sum()
    budgets = np.floor(quota).astype(np.int64)
    extra = total - int(budgets.sum())
    order = np.lexsort((np.arange(len(sizes)), -(quota - budgets)))
    budgets[order[:extra]] += 1
    return budgets
