"""Split a selection budget over groups (data sources, classes).

proportional (CoLM, arXiv 2407.19580): k_g = floor(n_g / N * k), then the leftover goes one by one to the
groups with the largest remainders n_g / N * k - k_g (ties: larger group, then group order);
balanced: k_g = min(n_g, k / G) with the leftover spread the same way over groups that still have room.
"""

from __future__ import annotations

import heapq
import math

BUDGET_MODES = ("proportional", "balanced")


def group_budgets(sizes: dict, k: int, mode: str = "proportional") -> dict:
    """Budgets per group summing to ``k``, never above a group's size (``sizes``: group -> count)."""
    if mode not in BUDGET_MODES:
        raise ValueError(f"budget mode must be one of {BUDGET_MODES}, got {mode!r}")
    empty = [g for g, n in sizes.items() if n <= 0]
    if empty:
        raise ValueError(f"groups {empty} are empty; drop them or give them data")
    total = sum(sizes.values())
    if k > total:
        raise ValueError(f"budget k={k} exceeds the {total} points of all groups; lower k")
    if k < 0:
        raise ValueError(f"budget k must be >= 0, got {k}")
    if mode == "proportional":
        share = {g: n / total * k for g, n in sizes.items()}
    else:
        share = {g: min(n, k / len(sizes)) for g, n in sizes.items()}
    budgets = {g: min(sizes[g], math.floor(s)) for g, s in share.items()}
    # the open groups by (largest remainder, larger group, earlier group), one leftover unit per pop
    heap = [(budgets[g] - share[g], -sizes[g], i, g) for i, g in enumerate(sizes) if budgets[g] < sizes[g]]
    heapq.heapify(heap)
    for _ in range(k - sum(budgets.values())):
        _, _, i, g = heapq.heappop(heap)
        budgets[g] += 1
        if budgets[g] < sizes[g]:
            heapq.heappush(heap, (budgets[g] - share[g], -sizes[g], i, g))
    return budgets
