"""Greedy maximisation of facility location: naive, lazy and stochastic greedy.

naive recomputes every gain each step. lazy returns the same exact greedy sequence (ties go to the lowest
index; a (1 - 1/e)-approximation, Nemhauser et al. 1978) but never recomputes: it keeps all gains exact by
subtracting, after each pick, only what the points whose coverage rose lose (``GainStore.discount``), and
over the live entries only once they are few. stochastic greedy (Mirzasoleiman et al. 2015, "Lazier than
lazy greedy") evaluates a seeded random sample of ceil(N/k ln(1/epsilon)) candidates per step and is a
(1 - 1/e - epsilon)-approximation in expectation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from hfdc.submodular.store import GainStore

OPTIMIZERS = ("naive", "lazy", "stochastic")


@dataclass
class GreedyRun:
    """A greedy selection: ``indices`` in selection order, their marginal ``gains``, the final coverage
    ``cur[i] = max(0, max_{j in S} s_ij)`` and ``assign[i]``, the position in ``indices`` of the item
    covering point i best (-1 when no selected item is positively similar)."""

    indices: torch.Tensor
    gains: torch.Tensor
    cur: torch.Tensor
    assign: torch.Tensor


def greedy(
    store: GainStore,
    k: int,
    optimizer: str = "lazy",
    seed: int = 0,
    epsilon: float = 0.1,
    progress: bool = False,
) -> GreedyRun:
    """Select ``k`` items greedily from the candidates of ``store`` (see module docstring); ``progress``
    shows a tqdm bar over the picks."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    n, device = store.n, store.device
    cur = torch.zeros(n, device=device)
    assign = torch.full((n,), -1, dtype=torch.long, device=device)
    selected = torch.zeros(n, dtype=torch.bool, device=device)
    indices, picked_gains = [], []
    generator = torch.Generator().manual_seed(seed)
    gains = store.initial_gains() if optimizer != "stochastic" or store.needs_offset else None
    for step in tqdm(range(k), desc=f"facility location ({optimizer})", disable=not progress):
        # steps 1, 2, 4, 8, ...
        if (
            optimizer == "lazy"
            and step & (step - 1) == 0
            and step
            and (store.compacted or store.wants_compaction(cur))
        ):
            store.compact(cur)
        if optimizer == "stochastic":
            remaining = (~selected).nonzero().flatten()
            size = min(len(remaining), math.ceil(n / k * math.log(1 / epsilon)))
            sample = remaining[torch.randperm(len(remaining), generator=generator)[:size].to(device)].sort().values
            exact = store.gains(sample, cur)
            best = int(torch.argmax(exact))
            j, gain = int(sample[best]), exact[best]
        else:
            if optimizer == "naive" and step:
                gains = store.all_gains(cur).masked_fill_(selected, -math.inf)
            j = int(torch.argmax(gains))
            gain = gains[j].clone()
            gains[j] = -math.inf
        indices.append(j)
        picked_gains.append(gain)
        selected[j] = True
        column = store.columns(torch.tensor([j], device=device))[0]
        points = (column > cur).nonzero().flatten()
        old, new = cur[points], column[points]
        if optimizer == "lazy":
            store.discount(gains, points, old, new)
        cur[points] = new
        assign[points] = step
    return GreedyRun(
        indices=torch.tensor(indices, dtype=torch.long, device=device),
        gains=torch.stack(picked_gains) if picked_gains else torch.zeros(0, dtype=torch.float64, device=device),
        cur=cur,
        assign=assign,
    )
