"""Batched greedy with diminishing returns inside one latent class (CLIPCov, arXiv 2403.12267).

A class offers its members in a stream: the ``block_size`` highest current scores, then, before the next
block, every remaining member j of class c (size |c|) is lowered as in the authors' notebook by

    (1/|c|) sum_{b in block} [thr(img_j . txt_b) + thr(img_b . txt_j)]     (the share of j's cross term covered)
  + (1/|c|) sum_{b picked in c so far} cross_b                              (class-wide)
  + (1/|c|) sum_{b in block} label_b / 2                                    (class-wide)

and re-sorted (a lazy, batched approximation of the submodular objective). The notebook deducts when
``(picks + 1) % 200 == 0`` (first after 199 picks, then every 200); here every ``block_size`` picks.
The class-wide terms do not change the order inside a class; they make a class that has given many picks
lose ground to the others when all classes share one ranked list (``hfdc.clipcov.allocation``). The stream
of a class depends on that class alone, so each process can build its classes' streams and only the
allocation is global.
"""

from __future__ import annotations

import numpy as np
import torch

from hfdc.clipcov.scores import ClassScores, pair_similarity_sums


def ranked(scores: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Positions sorted by descending score; equal scores by ascending ``tiebreak``."""
    return np.lexsort((tiebreak, -scores))


class ClassGreedy:
    """The pick stream of one class, grown block by block on demand (:meth:`extend`).

    ``positions`` are the picked members (positions in the class) in pick order, ``values`` their scores
    at the moment they were picked; ``tiebreak`` is a seeded rank that orders equal scores.
    """

    def __init__(self, scores: ClassScores, tiebreak: np.ndarray, block_size: int = 200):
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.size = len(scores.total)
        self.current = scores.total.double().numpy().copy()
        self.cross = scores.cross.double().numpy()
        self.label = scores.label.double().numpy()
        self.tiebreak = np.asarray(tiebreak)
        self.block_size = block_size
        self.available = np.ones(self.size, dtype=bool)
        self.blocks: list[np.ndarray] = []
        self.block_values: list[np.ndarray] = []
        self.cross_picked = 0.0
        self.deducted = 0  # blocks whose deduction has been applied

    def __len__(self) -> int:
        return int(self.size - self.available.sum())

    @property
    def positions(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, dtype=np.int64)

    @property
    def values(self) -> np.ndarray:
        return np.concatenate(self.block_values) if self.block_values else np.zeros(0)

    def extend(self, image: torch.Tensor, text: torch.Tensor, length: int, threshold: float | None = 0.0) -> None:
        """Grow the stream by whole blocks until it holds ``min(length, class size)`` picks.

        ``image``/``text``: the class's L2-normalised embeddings (used for the deductions).
        """
        while len(self) < min(length, self.size):
            if self.deducted < len(self.blocks):
                self.deduct(image, text, threshold)
            candidates = np.flatnonzero(self.available)
            block = candidates[ranked(self.current[candidates], self.tiebreak[candidates])[: self.block_size]]
            self.blocks.append(block)
            self.block_values.append(self.current[block])
            self.available[block] = False

    def deduct(self, image: torch.Tensor, text: torch.Tensor, threshold: float | None) -> None:
        """Lower every member's score after the last block (formula in the module docstring)."""
        block = self.blocks[-1]
        index = torch.from_numpy(block)
        covered = pair_similarity_sums(image, text, image[index], text[index], threshold).double().numpy()
        self.cross_picked += self.cross[block].sum()
        self.current -= (covered + self.cross_picked + self.label[block].sum() / 2) / self.size
        self.deducted += 1
