"""Facility location selection: maximise F(S) = sum_i w_i max(0, max_{j in S} s_ij) subject to |S| = k.

The coreset objective of CRAIG (Mirzasoleiman et al. 2020) and CoLM (Nguyen et al. 2025, arXiv 2407.19580).
Coverage starts at 0, so negative similarities (cosine) never count. The medoid weight of a selected item
is the total weight of the points it covers best (its cluster size when w = 1); every selected item covers
itself. With a sparse similarity (``n_neighbors``, or a given sparse matrix) the pairs not stored count as 0, and
a point with no stored similarity to any selected item counts in no medoid weight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from hfdc.submodular.budgets import group_budgets
from hfdc.submodular.greedy import OPTIMIZERS, GreedyRun, greedy
from hfdc.submodular.kernels import METRICS, Kernel, check_features, nearest_neighbours
from hfdc.submodular.store import GainStore, SparseGainStore


@dataclass
class FacilityLocationResult:
    """``indices`` in selection order (grouped by group when groups are given), their marginal ``gains``,
    medoid ``weights`` (summed point weight each selected item covers best) and ``budgets`` per group."""

    indices: torch.Tensor
    gains: torch.Tensor
    weights: torch.Tensor
    budgets: dict = field(default_factory=dict)

    @property
    def objective(self) -> float:
        """F(S), the sum of the marginal gains."""
        return float(self.gains.sum())


def facility_location(
    features: torch.Tensor | None = None,
    similarity: torch.Tensor | None = None,
    k: int | Mapping = 1,
    metric: str = "cosine",
    optimizer: str = "lazy",
    groups: Sequence | torch.Tensor | None = None,
    seed: int = 0,
    point_weights: torch.Tensor | None = None,
    epsilon: float = 0.1,
    memory_mb: float = 2048.0,
    progress: bool = False,
    n_neighbors: int | None = None,
) -> FacilityLocationResult:
    """Greedy facility-location selection of ``k`` items (see module docstring).

    Args:
        features: [N, d] tensor; the similarity comes from ``metric`` (cosine, euclidean, l1).
        similarity: a given [N, N] tensor with ``similarity[i, j] = s_ij`` (point i covered by j), dense or
            sparse (torch COO / CSR: pairs not stored count as 0); instead of ``features``.
        k: the budget; with ``groups`` an int is split proportionally, or a mapping group -> budget.
        optimizer: "lazy" (exact greedy, fast), "naive" (exact greedy) or "stochastic".
        groups: one label per point; selection then runs within each group (points only cover their own
            group), groups in sorted label order.
        seed: seed of the stochastic optimizer's samples.
        point_weights: w_i >= 0 per point (default 1).
        epsilon: stochastic greedy's sample size parameter.
        memory_mb: memory for the similarity matrix; larger problems compute it in row blocks.
        progress: show a tqdm bar over the picks (long runs).
        n_neighbors: with ``features``, keep only each point's n most similar other points (exact k nearest
            neighbours, within its group): memory O(N n) instead of O(N^2), so N in the millions fits.
    """
    if (features is None) == (similarity is None):
        raise ValueError("give exactly one of features=[N, d] or similarity=[N, N]")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if similarity is not None and n_neighbors is not None:
        raise ValueError("n_neighbors applies to features=; pass a sparse similarity= for your own neighbour graph")
    if similarity is not None:
        similarity = _check_similarity(similarity)
    else:
        features = check_features(features)
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}; or pass similarity=")
    data = features if features is not None else similarity
    n = data.shape[0]
    if point_weights is not None:
        point_weights = torch.as_tensor(point_weights, dtype=torch.float32, device=data.device)
        if point_weights.shape != (n,) or not torch.isfinite(point_weights).all() or (point_weights < 0).any():
            raise ValueError(f"point_weights must be {n} finite values >= 0")
    members = _group_members(groups, n, data.device)
    budgets = _budgets(members, k, n)
    parts = []
    for label, idx in members.items():
        if budgets[label] == 0:
            continue
        sub_w = point_weights[idx] if point_weights is not None else None
        if similarity is not None and similarity.is_sparse:
            store = SparseGainStore(similarity if len(members) == 1 else _sparse_block(similarity, idx), sub_w)
        elif similarity is not None:
            sub = similarity if len(members) == 1 else similarity[idx][:, idx]
            store = GainStore(sub, None, sub_w, int(memory_mb * 2**20), symmetric=False)
        elif n_neighbors is not None:
            store = SparseGainStore(nearest_neighbours(features[idx], metric, n_neighbors, progress=progress), sub_w)
        else:
            kernel = Kernel(features[idx], metric)
            dense = kernel.n * kernel.n * 4 <= memory_mb * 2**20
            store = GainStore(kernel.dense() if dense else None, kernel, sub_w, int(memory_mb * 2**20))
        run = greedy(store, budgets[label], optimizer=optimizer, seed=seed, epsilon=epsilon, progress=progress)
        parts.append((idx[run.indices], run.gains, _medoid_weights(store, run, sub_w)))
    if not parts:
        empty = torch.zeros(0, device=data.device)
        return FacilityLocationResult(empty.long(), empty.double(), empty, budgets)
    return FacilityLocationResult(
        indices=torch.cat([p[0] for p in parts]),
        gains=torch.cat([p[1] for p in parts]),
        weights=torch.cat([p[2] for p in parts]),
        budgets=budgets,
    )


def facility_location_objective(
    indices: torch.Tensor,
    features: torch.Tensor | None = None,
    similarity: torch.Tensor | None = None,
    metric: str = "cosine",
    point_weights: torch.Tensor | None = None,
    block_rows: int = 256,
) -> float:
    """F(S) = sum_i w_i max(0, max_{j in S} s_ij) of a given selection, computed in blocks of S."""
    indices = torch.as_tensor(indices, dtype=torch.long)
    if similarity is not None and similarity.layout != torch.strided:
        store = SparseGainStore(_check_similarity(similarity), None)
        cover = torch.zeros(store.n, device=store.device)
        for start in range(0, len(indices), store.block_rows):
            columns = store.columns(indices[start : start + store.block_rows].to(store.device))
            cover = torch.maximum(cover, columns.max(0).values)
    elif similarity is not None:
        cover = _check_similarity(similarity, square=False)[:, indices].max(1).values.clamp(min=0)
    else:
        kernel = Kernel(check_features(features), metric)
        if metric != "cosine":
            kernel.max_dist = max(float(kernel.distances(b).max()) for b in _blocks(kernel.n, block_rows))
        cover = torch.zeros(kernel.n, device=features.device)
        for start in range(0, len(indices), block_rows):
            rows = kernel.rows(indices[start : start + block_rows].to(features.device))
            cover = torch.maximum(cover, rows.max(0).values)
    weights = point_weights if point_weights is not None else torch.ones_like(cover)
    return float((cover.double() * weights.double()).sum())


def _check_similarity(similarity: torch.Tensor, square: bool = True) -> torch.Tensor:
    """A (``square``) dense or sparse (COO / CSR) similarity as float32 (coalesced COO when sparse)."""
    if (
        not isinstance(similarity, torch.Tensor)
        or similarity.ndim != 2
        or (square and similarity.shape[0] != similarity.shape[1])
    ):
        shape = tuple(similarity.shape) if isinstance(similarity, torch.Tensor) else type(similarity).__name__
        raise ValueError(f"similarity must be a {'square [N, N]' if square else '[N, M]'} tensor, got {shape}")
    if similarity.layout == torch.strided:
        return check_features(similarity, "similarity")
    similarity = similarity.to_sparse_coo().coalesce()
    values = check_features(similarity.values()[:, None], "similarity values")[:, 0]
    return torch.sparse_coo_tensor(similarity.indices(), values, similarity.shape, check_invariants=True).coalesce()


def _sparse_block(similarity: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The sparse similarity among points ``idx`` only, renumbered 0..len(idx) - 1."""
    position = torch.full((similarity.shape[0],), -1, dtype=torch.long, device=idx.device)
    position[idx] = torch.arange(len(idx), device=idx.device)
    rows, cols = position[similarity.indices()]
    inside = (rows >= 0) & (cols >= 0)
    pairs = torch.stack([rows[inside], cols[inside]])
    values = similarity.values()[inside]
    return torch.sparse_coo_tensor(pairs, values, (len(idx), len(idx)), check_invariants=True).coalesce()


def _blocks(n: int, size: int):
    return (slice(start, start + size) for start in range(0, n, size))


def _group_members(groups, n: int, device) -> dict:
    """Group label -> point indices (sorted labels); one group "all" without ``groups``."""
    if groups is None:
        return {None: torch.arange(n, device=device)}
    labels = groups.tolist() if isinstance(groups, torch.Tensor) else list(groups)
    if len(labels) != n:
        raise ValueError(f"groups must give one label per point: got {len(labels)} labels for {n} points")
    members: dict = {}
    for i, label in enumerate(labels):
        members.setdefault(label, []).append(i)
    return {label: torch.tensor(members[label], device=device) for label in sorted(members)}


def _budgets(members: dict, k, n: int) -> dict:
    sizes = {label: len(idx) for label, idx in members.items()}
    if isinstance(k, Mapping):
        unknown = [g for g in k if g not in sizes]
        if unknown:
            raise ValueError(f"budgets name groups {unknown} that have no points (empty); groups are {list(sizes)}")
        too_big = {g: (b, sizes[g]) for g, b in k.items() if b > sizes[g] or b < 0}
        if too_big:
            raise ValueError(f"budgets (budget, size) exceed group sizes or are negative: {too_big}; lower them")
        return {g: int(k.get(g, 0)) for g in sizes}
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int or a mapping group -> int, got {type(k).__name__}")
    if k > n or k < 0:
        raise ValueError(f"k={k} must lie in [0, N={n}]; lower k or add points")
    return group_budgets(sizes, k, "proportional") if len(sizes) > 1 else {next(iter(sizes)): k}


def _medoid_weights(store: GainStore, run: GreedyRun, point_weights: torch.Tensor | None) -> torch.Tensor:
    """Summed weight of the points each selected item covers best (ties: earliest selected); every selected item
    covers itself, so it weighs at least its own point weight (as in CoLM's reference code)."""
    assign = run.assign.clone()
    missing = (assign < 0).nonzero().flatten()
    if len(missing):  # points no selected item covers positively: give them to their most similar one
        best = torch.full((len(missing),), -torch.inf, device=assign.device)
        for start in range(0, len(run.indices), store.block_rows):
            values, pos = store.columns(run.indices[start : start + store.block_rows])[:, missing].max(0)
            better = values > best
            best[better] = values[better]
            assign[missing[better]] = pos[better] + start
    assign[run.indices] = torch.arange(len(run.indices), device=assign.device)
    counted = assign >= 0  # sparse similarity: points with no stored similarity to any pick count nowhere
    weights = point_weights[counted] if point_weights is not None else None
    return torch.bincount(assign[counted], weights=weights, minlength=len(run.indices)).float()
