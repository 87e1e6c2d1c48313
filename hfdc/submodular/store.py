"""Facility-location gains from a dense similarity matrix, from kernel blocks, or from live entries only.

gain(j | cur) = sum_i w_i max(0, s_ij - cur_i), with cur_i = max_{j in S} s_ij the current coverage.
Adding item c raises cur_i from o_i to n_i = s_ic on the points i it covers better, and lowers every gain by
delta_j = sum_i w_i (clamp(s_ij, o_i, n_i) - o_i); so exact gains of all candidates can be kept up to date
by touching only the changed points. Because cur only grows, an entry with s_ij <= cur_i never matters
again: once few entries are "live", the store keeps them in CSR layout (row = point i, column = candidate j)
and the updates cost only the live entries of the changed points. ``SparseGainStore`` starts in that layout
from a sparse similarity (a k-nearest-neighbour graph), where the pairs not stored count as s_ij = 0.
"""

from __future__ import annotations

import torch

from hfdc.submodular.kernels import Kernel

ENTRY_BYTES = 12  # float32 value + int64 column of one live entry


class GainStore:
    """Exact facility-location gains within a memory budget.

    Either the matrix ``matrix[i, j] = s_ij`` (point i, candidate j; ``symmetric`` when s_ij = s_ji) is
    held, or rows come from a (symmetric) ``kernel`` block by block; ``compact`` switches to the live-entry
    CSR layout.
    """

    def __init__(
        self,
        matrix: torch.Tensor | None,
        kernel: Kernel | None,
        point_weights: torch.Tensor | None,
        memory_bytes: int,
        symmetric: bool = True,
        block_bytes: int = 32 * 2**20,
    ):
        self.matrix, self.kernel, self.symmetric = matrix, kernel, symmetric
        self.n = matrix.shape[0] if matrix is not None else kernel.n
        self.device = matrix.device if matrix is not None else kernel.features.device
        self.w = point_weights if point_weights is not None else torch.ones(self.n, device=self.device)
        self.block_rows = max(1, block_bytes // (4 * self.n))
        self.max_entries = memory_bytes // ENTRY_BYTES
        self.crow = self.col = self.val = None  # CSR of live entries once compacted
        self._scratch = None

    @property
    def compacted(self) -> bool:
        return self.crow is not None

    @property
    def needs_offset(self) -> bool:
        """Whether the kernel still lacks max_dist (euclidean / l1 from features); set by ``initial_gains``."""
        return self.matrix is None and self.kernel.metric != "cosine" and self.kernel.max_dist is None

    def point_rows(self, idx: torch.Tensor | slice) -> torch.Tensor:
        """s[idx, :]: similarities of points ``idx`` to every candidate."""
        return self.matrix[idx] if self.matrix is not None else self.kernel.rows(idx)

    def columns(self, idx: torch.Tensor) -> torch.Tensor:
        """s[:, idx] as rows [len(idx), N]: similarities of every point to candidates ``idx``."""
        if self.matrix is None:
            return self.kernel.rows(idx)
        return self.matrix[idx] if self.symmetric else self.matrix[:, idx].T

    def _load_rows(self, idx: torch.Tensor | slice, points: bool) -> torch.Tensor:
        """A writable copy of s[idx, :] (``points``) or s[:, idx].T (candidates), at most ``block_rows`` rows, in
        a scratch buffer reused across calls: long block-wise runs then allocate nothing large per step
        (fresh blocks of varying sizes make glibc's heap grow without bound)."""
        rows = len(range(self.n)[idx]) if isinstance(idx, slice) else len(idx)
        if self._scratch is None:
            self._scratch = torch.empty(self.block_rows, self.n, device=self.device)
        out = self._scratch[:rows]
        if self.matrix is None:
            return self.kernel.rows(idx, out=out)
        if not (points or self.symmetric):
            return out.copy_(self.matrix[:, idx].T)
        if isinstance(idx, slice):
            return out.copy_(self.matrix[idx])
        return torch.index_select(self.matrix, 0, idx, out=out)

    def _blocks(self):
        return (slice(start, min(self.n, start + self.block_rows)) for start in range(0, self.n, self.block_rows))

    def initial_gains(self) -> torch.Tensor:
        """Gains of every candidate with nothing selected (cur = 0), in one blocked pass."""
        if self.needs_offset:  # s = max_dist - dist >= 0, so gain_j = max_dist * sum(w) - sum_i w_i dist_ij
            max_dist, out = 0.0, torch.zeros(self.n, dtype=torch.float64, device=self.device)
            for block in self._blocks():
                dist = self.kernel.distances(block)
                max_dist = max(max_dist, float(dist.max()))
                out += self.w[block].double() @ dist.double()
            self.kernel.max_dist = max_dist
            return max_dist * float(self.w.sum()) - out
        return self.all_gains(torch.zeros(self.n, device=self.device))

    def all_gains(self, cur: torch.Tensor) -> torch.Tensor:
        """Gains of every candidate from scratch (naive greedy), one pass over point blocks (float64)."""
        out = torch.zeros(self.n, dtype=torch.float64, device=self.device)
        for block in self._blocks():
            contrib = self._load_rows(block, points=True).sub_(cur[block, None]).clamp_(min=0)
            out += self.w[block].double() @ contrib.double()
        return out

    def gains(self, idx: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        """Gains of candidates ``idx`` from scratch (stochastic greedy's samples), float64."""
        parts = []
        for start in range(0, len(idx), self.block_rows):
            contrib = self._load_rows(idx[start : start + self.block_rows], points=False).sub_(cur).clamp_(min=0)
            parts.append((contrib @ self.w).double())
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64, device=self.device)

    def discount(self, gains: torch.Tensor, points: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> None:
        """Lower ``gains`` in place after cur[points] rose from ``old`` to ``new``:
        gains_j -= sum_i w_i (clamp(s_ij, old_i, new_i) - old_i)."""
        if self.compacted:
            pos, segment = self._entries(points)
            lo, hi = old[segment], new[segment]
            contrib = (torch.clamp(self.val[pos], min=lo, max=hi) - lo) * self.w[points][segment]
            gains.index_add_(0, self.col[pos], contrib.double(), alpha=-1)
            return
        for start in range(0, len(points), self.block_rows):
            chunk = slice(start, start + self.block_rows)
            lo, hi = old[chunk, None], new[chunk, None]
            contrib = self._load_rows(points[chunk], points=True).clamp_(min=lo, max=hi).sub_(lo)
            gains -= self.w[points[chunk]].double() @ contrib.double()

    def _entries(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions in col/val of the live entries of ``rows``, and which of ``rows`` each belongs to."""
        return _segments(self.crow, rows)

    def wants_compaction(self, cur: torch.Tensor) -> bool:
        """Whether the live entries (s_ij > cur_i), estimated on evenly spaced point rows, fit the memory
        budget and are few enough (<= 1/8 of all) to beat dense updates."""
        probes = torch.linspace(0, self.n - 1, min(64, self.n), device=self.device).long()
        live = float((self.point_rows(probes) > cur[probes, None]).float().mean()) * self.n * self.n
        return live <= min(self.max_entries, self.n * self.n / 8)

    def compact(self, cur: torch.Tensor) -> None:
        """Keep only the live entries (s_ij > cur_i), as CSR over points."""
        if self.compacted:
            row = torch.repeat_interleave(torch.arange(self.n, device=self.device), self.crow.diff())
            keep = (self.val > cur[row]).nonzero().flatten()
            rows, self.col, self.val = row[keep], self.col[keep], self.val[keep]
        else:
            rows, cols, vals = [], [], []
            for block in self._blocks():
                dense = self.point_rows(block)
                flat = (dense > cur[block, None]).view(-1).nonzero().flatten()
                rows.append(flat // self.n + block.start)
                cols.append(flat % self.n)
                vals.append(dense.view(-1)[flat])
            rows, self.col, self.val = torch.cat(rows), torch.cat(cols), torch.cat(vals)
        self.crow = torch.zeros(self.n + 1, dtype=torch.long, device=self.device)
        torch.cumsum(torch.bincount(rows, minlength=self.n), 0, out=self.crow[1:])


def _segments(pointers: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of the entries of CSR ``rows`` (row pointers ``pointers``), and which of ``rows`` each belongs to."""
    starts = pointers[rows]
    lengths = pointers[rows + 1] - starts
    segment = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), lengths)
    offsets = torch.cumsum(lengths, 0) - lengths
    pos = torch.arange(len(segment), device=rows.device) - offsets[segment] + starts[segment]
    return pos, segment


def _pointers(index: torch.Tensor, n: int) -> torch.Tensor:
    """CSR row pointers of entries sorted by ``index``."""
    pointers = torch.zeros(n + 1, dtype=torch.long, device=index.device)
    torch.cumsum(torch.bincount(index, minlength=n), 0, out=pointers[1:])
    return pointers


class SparseGainStore(GainStore):
    """Exact facility-location gains from a sparse [N, N] similarity (``similarity[i, j] = s_ij``, point i covered
    by candidate j); pairs not stored have s_ij = 0, so they never raise a coverage.

    Held as CSR over points (what ``GainStore.discount`` and ``compact`` update, from the start) and as CSR over
    candidates (their columns); memory O(stored entries).
    """

    def __init__(self, similarity: torch.Tensor, point_weights: torch.Tensor | None, block_bytes: int = 32 * 2**20):
        similarity = similarity.to_sparse_coo().coalesce()  # sorted by point, then candidate
        (rows, cols), values = similarity.indices(), similarity.values().float()
        self.matrix = self.kernel = self._scratch = None
        self.symmetric = False
        self.n, self.device = similarity.shape[0], values.device
        self.w = point_weights if point_weights is not None else torch.ones(self.n, device=self.device)
        self.block_rows = max(1, block_bytes // (4 * self.n))
        self.max_entries = len(values)
        self.crow, self.col, self.val = _pointers(rows, self.n), cols, values
        order = torch.argsort(cols, stable=True)
        self.ccol, self.cpoint, self.cval = _pointers(cols, self.n), rows[order], values[order]

    @property
    def needs_offset(self) -> bool:
        return False

    def initial_gains(self) -> torch.Tensor:
        return self.all_gains(torch.zeros(self.n, device=self.device))

    def all_gains(self, cur: torch.Tensor) -> torch.Tensor:
        row = torch.repeat_interleave(torch.arange(self.n, device=self.device), self.crow.diff())
        contrib = (self.val - cur[row]).clamp_(min=0) * self.w[row]
        return torch.zeros(self.n, dtype=torch.float64, device=self.device).index_add_(0, self.col, contrib.double())

    def gains(self, idx: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        pos, segment = _segments(self.ccol, idx)
        points = self.cpoint[pos]
        contrib = (self.cval[pos] - cur[points]).clamp_(min=0) * self.w[points]
        return torch.zeros(len(idx), dtype=torch.float64, device=self.device).index_add_(0, segment, contrib.double())

    def columns(self, idx: torch.Tensor) -> torch.Tensor:
        """s[:, idx] as rows [len(idx), N], -inf where no similarity is stored (it covers nothing there)."""
        pos, segment = _segments(self.ccol, idx)
        out = torch.full((len(idx), self.n), -torch.inf, device=self.device)
        out[segment, self.cpoint[pos]] = self.cval[pos]
        return out
