"""Choose the small batch from the large one: kept sources, per-source budgets, facility location per source.

CoLM (arXiv 2407.19580): examples of rare sources (``keep_sources``) are always kept; the rest of the budget
is split over the other sources (proportional by default) and filled within each source by lazy-greedy
facility location on its sparsified gradient features. The quality measure is the relative gradient-matching
error |mean_S f - mean_B f| / |mean_B f| between the small batch S and the large batch B.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hfdc.colm.moments import FeatureMatrix, sparsify
from hfdc.submodular import facility_location, group_budgets


@dataclass
class SmallBatch:
    """Positions of the selected examples in the large batch, their medoid weights, and budgets per source."""

    indices: torch.Tensor
    weights: torch.Tensor
    budgets: dict


def select_small_batch(
    features: torch.Tensor | FeatureMatrix,
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
    features = FeatureMatrix.of(features)
    if not 0 < budget <= len(features):
        raise ValueError(f"small batch budget {budget} must lie in [1, {len(features)}] (the large batch)")
    kept_mask = torch.isin(sources, torch.tensor(list(keep_sources), dtype=sources.dtype, device=sources.device))
    kept = kept_mask.nonzero().flatten()
    if len(kept) >= budget:  # more rare examples than room: select among them only
        pool, budget_left, kept = kept, budget, kept[:0]
    else:
        pool, budget_left = (~kept_mask).nonzero().flatten(), budget - len(kept)
    groups = sources[pool].tolist() if budget_mode != "none" else [0] * len(pool)
    sizes = {g: groups.count(g) for g in sorted(set(groups))}
    budgets = group_budgets(sizes, budget_left, budget_mode) if budget_mode != "none" else {0: budget_left}
    members = {g: pool[torch.tensor([x == g for x in groups], device=pool.device)] for g, k in budgets.items() if k}
    means = features.means(
        [(torch.arange(len(features), device=pool.device), None)] + [(rows, None) for rows in members.values()]
    )
    if not torch.isfinite(means[0]).all():
        raise ValueError("gradient features contain NaN/inf: lower learning_rate or zo_eps, or check the loss")
    indices, weights = [kept], [torch.ones(len(kept), device=features.device)]
    for (group, rows), mean in zip(members.items(), means[1:]):
        x = features.take(rows, sparsify(mean, zo_dim, how, seed))
        result = facility_location(x, k=budgets[group], metric=similarity)
        indices.append(rows[result.indices])
        weights.append(result.weights.to(features.device))
    return SmallBatch(torch.cat(indices), torch.cat(weights), budgets)


def matching_errors(
    features: torch.Tensor | FeatureMatrix, subsets: list[tuple[torch.Tensor, torch.Tensor | None]]
) -> list[float]:
    """|mean_S f - mean_B f| / |mean_B f| for each (S, weights) of ``subsets`` (a weighted mean over S when the
    weights are not None), from one pass over the features."""
    features = FeatureMatrix.of(features)
    everything = torch.arange(len(features), device=subsets[0][0].device)
    target, *approx = features.means([(everything, None), *subsets])
    scale = target.norm().clamp(min=1e-12)
    return [float((a - target).norm() / scale) for a in approx]


def matching_error(
    features: torch.Tensor | FeatureMatrix, indices: torch.Tensor, weights: torch.Tensor | None = None
) -> float:
    """|mean_S f - mean_B f| / |mean_B f| for the rows S = ``indices`` (``matching_errors`` for one subset)."""
    return matching_errors(features, [(indices, weights)])[0]
