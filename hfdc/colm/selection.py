"""Choose the small batch from the large one: kept sources, per-source budgets, facility location per source.

CoLM (arXiv 2407.19580): examples of rare sources (``keep_sources``) are always kept; the rest of the budget
is split over the other sources (proportional by default) and filled within each source by lazy-greedy
facility location on its sparsified gradient features. The quality measure is the relative gradient-matching
error |mean_S f - mean_B f| / |mean_B f| between the small batch S and the large batch B.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hfdc.colm.features import sparsify
from hfdc.submodular import facility_location, group_budgets


@dataclass
class SmallBatch:
    """Positions of the selected examples in the large batch, their medoid weights, and budgets per source."""

    indices: torch.Tensor
    weights: torch.Tensor
    budgets: dict


def select_small_batch(
    features: torch.Tensor,
    sources: torch.Tensor,
    budget: int,
    keep_sources: tuple[int, ...] = (),
    budget_mode: str = "proportional",
    similarity: str = "l1",
    zo_dim: int = 2560,
    how: str = "top",
    seed: int = 0,
) -> SmallBatch:
    """Select ``budget`` rows of ``features`` [B, D] (``sources``: [B] source ids; see module docstring)."""
    if not 0 < budget <= len(features):
        raise ValueError(f"small batch budget {budget} must lie in [1, {len(features)}] (the large batch)")
    if not torch.isfinite(features).all():
        raise ValueError("gradient features contain NaN/inf: lower learning_rate or zo_eps, or check the loss")
    kept_mask = torch.isin(sources, torch.tensor(list(keep_sources), dtype=sources.dtype, device=sources.device))
    kept = kept_mask.nonzero().flatten()
    if len(kept) >= budget:  # more rare examples than room: select among them only
        pool, budget_left, kept = kept, budget, kept[:0]
    else:
        pool, budget_left = (~kept_mask).nonzero().flatten(), budget - len(kept)
    groups = sources[pool].tolist() if budget_mode != "none" else [0] * len(pool)
    sizes = {g: groups.count(g) for g in sorted(set(groups))}
    budgets = group_budgets(sizes, budget_left, budget_mode) if budget_mode != "none" else {0: budget_left}
    indices, weights = [kept], [torch.ones(len(kept), device=features.device)]
    for group, k in budgets.items():
        if k == 0:
            continue
        members = pool[torch.tensor([g == group for g in groups], device=pool.device)]
        x = features[members]
        x = x[:, sparsify(x, zo_dim, how, seed)]
        result = facility_location(x, k=k, metric=similarity)
        indices.append(members[result.indices])
        weights.append(result.weights.to(features.device))
    return SmallBatch(torch.cat(indices), torch.cat(weights), budgets)


def matching_error(features: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor | None = None) -> float:
    """|mean_S f - mean_B f| / |mean_B f|; a weighted mean over S when ``weights`` are given."""
    target = features.mean(0)
    chosen = features[indices]
    approx = chosen.mean(0) if weights is None else (weights[:, None] * chosen).sum(0) / weights.sum()
    return float((approx - target).norm() / target.norm().clamp(min=1e-12))
