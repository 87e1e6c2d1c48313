"""Similarity kernels for facility location, computed whole or in row blocks.

cosine: s_ij = <x_i, x_j> / (|x_i| |x_j|); euclidean: s_ij = max_dist - |x_i - x_j|_2;
l1 (CoLM, Nguyen et al. 2025, arXiv 2407.19580): s_ij = max_dist - |x_i - x_j|_1, where max_dist is the
largest pairwise distance, so that every similarity is >= 0.

``nearest_neighbours`` keeps only each point's n most similar other points (and itself) as a sparse matrix, so
that N in the millions fits in memory (apricot's and submodlib's ``n_neighbors``): the kept entries equal the
dense similarity (max_dist is still the largest distance over all pairs), the others count as 0.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

METRICS = ("cosine", "euclidean", "l1")


def check_features(features: torch.Tensor, name: str = "features") -> torch.Tensor:
    """Validate a [N, d] matrix and return it as float32 (any input dtype); raise a ValueError naming the problem."""
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [N, d], got {type(features).__name__}")
    if features.ndim != 2:
        raise ValueError(f"{name} must have shape [N, d], got {tuple(features.shape)}")
    features = features.float()
    if not torch.isfinite(features).all():
        bad = (~torch.isfinite(features)).any(dim=1).nonzero().flatten()[:5].tolist()
        raise ValueError(f"{name} contain NaN or inf values (rows {bad}...); clean or drop those rows first")
    return features


def _distances(rows: torch.Tensor, features: torch.Tensor, metric: str) -> torch.Tensor:
    if metric == "l1":
        return torch.cdist(rows, features, p=1)
    sq = (rows * rows).sum(1, keepdim=True) + (features * features).sum(1)[None, :] - 2.0 * rows @ features.T
    return sq.clamp_(min=0).sqrt_()


class Kernel:
    """Similarity rows s[j, :] for candidate indices j, computed on demand from the features.

    For euclidean and l1 the offset ``max_dist`` comes from one pass over all pairs (``GainStore.initial_gains``).
    """

    def __init__(self, features: torch.Tensor, metric: str):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS} or a given similarity matrix, got {metric!r}")
        self.metric = metric
        features = features.float()
        self.features = torch.nn.functional.normalize(features, dim=1) if metric == "cosine" else features
        self.max_dist: float | None = None

    @property
    def n(self) -> int:
        return self.features.shape[0]

    def distances(self, idx: torch.Tensor | slice) -> torch.Tensor:
        """Pairwise distances of rows ``idx`` to all points (euclidean / l1 only)."""
        return _distances(self.features[idx], self.features, self.metric)

    def rows(self, idx: torch.Tensor | slice, out: torch.Tensor | None = None) -> torch.Tensor:
        """Similarity rows [len(idx), N], written into ``out`` when given."""
        if self.metric == "cosine":
            return torch.mm(self.features[idx], self.features.T, out=out)
        if self.max_dist is None:
            raise RuntimeError("max_dist is unset: it comes from a pass over all distances (GainStore.initial_gains)")
        return torch.sub(self.max_dist, self.distances(idx), out=out)

    def dense(self, block_rows: int = 1024) -> torch.Tensor:
        """The whole N x N similarity matrix, filled ``block_rows`` rows at a time (no N x N temporaries)."""
        out = torch.empty(self.n, self.n, dtype=self.features.dtype, device=self.features.device)
        for start in range(0, self.n, block_rows):
            block = slice(start, start + block_rows)
            if self.metric == "cosine":
                torch.mm(self.features[block], self.features.T, out=out[block])
            else:
                out[block] = self.distances(block)
        if self.metric != "cosine":
            self.max_dist = float(out.max())
            torch.sub(self.max_dist, out, out=out)
        return out


def pairwise_similarity(
    features: torch.Tensor, metric: str = "cosine", n_neighbors: int | None = None
) -> torch.Tensor:
    """The N x N similarity matrix of ``features`` under ``metric`` (see module docstring); sparse, with each
    point's ``n_neighbors`` most similar points only, when ``n_neighbors`` is given (``nearest_neighbours``)."""
    if n_neighbors is not None:
        return nearest_neighbours(features, metric, n_neighbors)
    return Kernel(check_features(features), metric).dense()


def nearest_neighbours(
    features: torch.Tensor, metric: str, n_neighbors: int, block_rows: int = 256, progress: bool = False
) -> torch.Tensor:
    """The [N, N] similarity restricted to each point's ``n_neighbors`` most similar other points and itself, as a
    sparse COO tensor (exact neighbours, found in one blocked O(N^2 d) pass with O(N n_neighbors) memory)."""
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int) or n_neighbors < 1:
        raise ValueError(f"n_neighbors must be an int >= 1, got {n_neighbors!r}")
    kernel = Kernel(check_features(features), metric)
    n, keep = kernel.n, min(n_neighbors + 1, kernel.n)
    cols, values, max_dist = [], [], 0.0
    for start in tqdm(range(0, n, block_rows), desc="nearest neighbours", disable=not progress):
        rows = torch.arange(start, min(n, start + block_rows), device=kernel.features.device)
        if metric == "cosine":
            scores = kernel.rows(rows)
        else:
            scores = kernel.distances(rows).neg_()
            max_dist = max(max_dist, -float(scores.min()))
        scores[torch.arange(len(rows)), rows] = torch.inf  # every point is its own neighbour
        top = torch.topk(scores, keep, dim=1)
        cols.append(top.indices)
        values.append(top.values)
    cols, values = torch.cat(cols), torch.cat(values)
    values[:, 0] = 1.0 if metric == "cosine" else 0.0  # the point itself: cosine 1, distance 0
    if metric != "cosine":
        values = max_dist + values  # max_dist - distance
    rows = torch.arange(n, device=cols.device).repeat_interleave(keep)
    pairs = torch.stack([rows, cols.flatten()])
    return torch.sparse_coo_tensor(pairs, values.flatten(), (n, n), check_invariants=True).coalesce()
