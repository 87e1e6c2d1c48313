"""How CLIPCov shares the budget among latent classes: ``global`` (the authors' notebook) or ``proportional``.

global: all classes compete in one ranked list. The notebook repeatedly takes the highest current score over
all unselected pairs, and lowers a class's scores after each block it gives (``hfdc.clipcov.greedy``). A
class's stream does not depend on the other classes, so that greedy is a merge of the class streams by their
head values; with key_t = min(v_1..v_t) (the running minimum of the stream's pick-time values v) it takes the
``budget`` largest keys, which is the same set up to exact ties (ties: class order by a seeded permutation,
then stream position, so every class gives a prefix of its stream).

proportional: class c keeps budget_c = its share of the budget by size (``hfdc.submodular.group_budgets``:
exact sum, never above the class size); the class-wide deductions then change nothing.
"""

from __future__ import annotations

import numpy as np

from hfdc.submodular import group_budgets

ALLOCATIONS = ("global", "proportional")


def proportional_budgets(sizes: np.ndarray, total: int) -> dict[int, int]:
    """class -> budget for the non-empty classes, proportional to size, summing exactly to ``total``."""
    return group_budgets({int(c): int(n) for c, n in enumerate(sizes) if n > 0}, total, "proportional")


def stream_keys(values: np.ndarray) -> np.ndarray:
    """Running minimum of a stream's pick-time values: the non-increasing key the global merge ranks by."""
    return np.minimum.accumulate(values) if len(values) else values


def global_counts(keys: dict[int, np.ndarray], total: int, class_rank: np.ndarray) -> dict[int, int]:
    """class -> how many of its stream's first picks are among the ``total`` largest keys of all streams."""
    classes = list(keys)
    lengths = np.array([len(keys[c]) for c in classes], dtype=np.int64)
    owner = np.repeat(np.arange(len(classes)), lengths)
    position = np.concatenate([np.arange(n) for n in lengths]) if len(lengths) else np.zeros(0, dtype=np.int64)
    values = np.concatenate([keys[c] for c in classes]) if classes else np.zeros(0)
    order = np.lexsort((position, class_rank[np.asarray(classes, dtype=np.int64)][owner], -values))
    counts = np.bincount(owner[order[:total]], minlength=len(classes))
    return {c: int(n) for c, n in zip(classes, counts)}


def unfinished(keys: dict[int, np.ndarray], counts: dict[int, int], sizes: np.ndarray) -> list[int]:
    """Classes whose whole computed stream is taken although members remain: their next picks may count too."""
    return [c for c, k in keys.items() if counts[c] == len(k) < sizes[c]]
