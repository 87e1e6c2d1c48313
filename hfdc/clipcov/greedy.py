"""Batched greedy with diminishing returns inside one latent class (CLIPCov, arXiv 2403.12267).

Take the ``block_size`` highest-scoring unselected members; then lower every member's score by its
similarity to the block, score_j -= (1/|c|) sum_{b in block} [thr(img_j . txt_b) + thr(img_b . txt_j)]
(the share of j's cross term the block already covers); re-sort; repeat until the budget is spent.
This is the lazy, batched approximation of the submodular objective used in the authors' notebook.
"""

from __future__ import annotations

import numpy as np
import torch

from hfdc.clipcov.scores import pair_similarity_sums


def ranked(scores: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Positions sorted by descending score; equal scores by ascending ``tiebreak``."""
    return np.lexsort((tiebreak, -scores))


def diminishing_returns_greedy(
    image: torch.Tensor,
    text: torch.Tensor,
    scores: np.ndarray,
    budget: int,
    tiebreak: np.ndarray,
    block_size: int = 200,
    threshold: float | None = 0.0,
) -> np.ndarray:
    """Positions (into this class) of ``budget`` members in the order they were picked.

    ``image``/``text`` are the class's L2-normalised embeddings, ``scores`` their CLIPCov scores,
    ``tiebreak`` a seeded rank that orders equal scores.
    """
    n = image.shape[0]
    if not 0 <= budget <= n:
        raise ValueError(f"budget {budget} must be between 0 and the class size {n}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    current = np.asarray(scores, dtype=np.float64).copy()
    available = np.ones(n, dtype=bool)
    picked: list[np.ndarray] = []
    remaining = budget
    while remaining > 0:
        candidates = np.flatnonzero(available)
        block = candidates[ranked(current[candidates], tiebreak[candidates])[: min(block_size, remaining)]]
        picked.append(block)
        available[block] = False
        remaining -= len(block)
        if remaining > 0:
            index = torch.from_numpy(block)
            covered = pair_similarity_sums(image, text, image[index], text[index], threshold) / n
            current -= covered.double().numpy()
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
