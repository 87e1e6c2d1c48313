"""The image-caption cross-covariance a subset keeps: ||Sigma_xy(S) - Sigma_xy(V)||_F.

Sigma_xy(S) = (1/|S|) sum_{i in S} x_i y_i^T over L2-normalised image embeddings x_i and caption embeddings
y_i; V is the whole pool. CLIPCov's theory (Joshi et al., AISTATS 2024, arXiv 2403.12267) says subsets that
keep Sigma_xy close to the pool's generalise better; its practical score (centrality, alignment, label
agreement) approximates that, so this error is a diagnostic to report beside every method, not a target.
"""

from __future__ import annotations

import numpy as np
import torch

from hfdc.clipcov.checks import CHUNK_ROWS, read_rows


def outer_sum(image: torch.Tensor, text: torch.Tensor) -> np.ndarray:
    """sum_i x_i y_i^T [dim, dim] (float64) of a block of normalised image rows x and caption rows y."""
    return (image.T @ text).double().numpy()


def cross_covariance_sum(image, text, rows=None, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """sum_i x_i y_i^T [dim, dim] (float64) over ``rows`` (ascending indices; None = every row), read in chunks."""
    dim = image.shape[1]
    total = np.zeros((dim, dim))
    count = image.shape[0] if rows is None else len(rows)
    for start in range(0, count, chunk_rows):
        index = slice(start, min(count, start + chunk_rows)) if rows is None else rows[start : start + chunk_rows]
        total += outer_sum(read_rows(image, index), read_rows(text, index))
    return total


def cross_covariance_error(subset_sum: np.ndarray, subset_size: int, pool_sum: np.ndarray, pool_size: int) -> float:
    """||subset_sum / |S| - pool_sum / |V|||_F from the two sums of :func:`cross_covariance_sum`."""
    return float(np.linalg.norm(subset_sum / subset_size - pool_sum / pool_size))
