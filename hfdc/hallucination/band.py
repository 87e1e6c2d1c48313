"""Band search of the two-stage detector: the window of k consecutive questions (ordered by self score) whose
two-stage score has the best AUROC, in O(n log n).

The two-stage score of question i is c_i inside the window and s_i outside. AUROC = U / (n_1 n_0) with the
Mann-Whitney count U = #{(i, j): y_i = 1, y_j = 0, score_i > score_j} + #{ties} / 2. Sliding the window by
one position changes two scores (one leaves: c -> s, one enters: s -> c); each change moves U by the number
of opposite-label scores below / above / equal to the old and new value, read from Fenwick trees over the
ranks of all 2n values: O(log n) per step, O(n log n) in all (a rescoring per window would be O(n^2 log n)).
"""

from __future__ import annotations

import numpy as np


class _Fenwick:
    """Counts per rank 1..size with prefix sums in O(log size)."""

    def __init__(self, counts: np.ndarray):
        self.size = len(counts)
        self.counts = counts.astype(np.int64).tolist()
        tree = [0, *self.counts]
        for i in range(1, self.size + 1):
            parent = i + (i & -i)
            if parent <= self.size:
                tree[parent] += tree[i]
        self.tree = tree
        self.total = sum(self.counts)

    def add(self, rank: int, delta: int) -> None:
        self.counts[rank - 1] += delta
        self.total += delta
        while rank <= self.size:
            self.tree[rank] += delta
            rank += rank & -rank

    def prefix(self, rank: int) -> int:
        """Count of ranks 1..rank."""
        total = 0
        while rank > 0:
            total += self.tree[rank]
            rank -= rank & -rank
        return total


def window_aurocs(s: np.ndarray, c: np.ndarray, labels: np.ndarray, order: np.ndarray, k: int) -> np.ndarray:
    """AUROC of the two-stage score for every window order[start : start + k], start = 0 .. n - k."""
    n = len(s)
    labels = np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int(n - labels.sum())
    _, ranks = np.unique(np.concatenate([s, c]), return_inverse=True)
    ranks = ranks + 1  # Fenwick ranks start at 1
    size = int(ranks.max())
    rank_s, rank_c = ranks[:n], ranks[n:]
    current = rank_s.copy()
    current[order[:k]] = rank_c[order[:k]]
    trees = {flag: _Fenwick(np.bincount(current[labels == flag], minlength=size + 1)[1:]) for flag in (True, False)}
    neg = trees[False]
    u2 = 0  # 2 U, an integer
    for r in current[labels].tolist():
        u2 += 2 * neg.prefix(r - 1) + neg.counts[r - 1]

    def contribution2(is_positive: bool, r: int) -> int:
        """2 x the pairs one score of rank r wins against the other label (ties count 1/2)."""
        other = trees[not is_positive]
        equal = other.counts[r - 1]
        if is_positive:
            return 2 * other.prefix(r - 1) + equal
        return 2 * (other.total - other.prefix(r)) + equal

    def move(i: int, old: int, new: int) -> int:
        if old == new:
            return 0
        flag = labels_list[i]
        before = contribution2(flag, old)
        trees[flag].add(old, -1)
        trees[flag].add(new, 1)
        return contribution2(flag, new) - before

    out = np.empty(n - k + 1)
    out[0] = u2
    order_list, labels_list = order.tolist(), labels.tolist()
    rank_s_list, rank_c_list = rank_s.tolist(), rank_c.tolist()
    for start in range(1, n - k + 1):
        leaving, entering = order_list[start - 1], order_list[start + k - 1]
        u2 += move(leaving, rank_c_list[leaving], rank_s_list[leaving])
        u2 += move(entering, rank_s_list[entering], rank_c_list[entering])
        out[start] = u2
    return out / (2.0 * positives * negatives)


def best_window(s: np.ndarray, c: np.ndarray, labels: np.ndarray, order: np.ndarray, k: int) -> tuple[int, float]:
    """(start, AUROC) of the first window of k consecutive questions in ``order`` with the highest AUROC."""
    values = window_aurocs(s, c, labels, order, k)
    start = int(np.argmax(values))
    return start, float(values[start])
