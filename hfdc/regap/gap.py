"""The modality gap between image-token and text-token states of one layer: Gaussian fits and their distances.

For image states X and text states Y of one layer, both rescaled by the mean text-token norm
s = mean_j ||y_j|| (so layers of different scale compare), with Gaussian fits N(mu_x, S_x) and N(mu_y, S_y):

    Frechet   = ||mu_x - mu_y||^2 + Tr(S_x + S_y - 2 (S_x^1/2 S_y S_x^1/2)^1/2)      (divided by s^2)
    distance  = ||mu_x - mu_y|| / s
    cosine gap = 1 - cos(mu_x, mu_y)

Summing the Frechet term over the LLM's layers gives the Modality Integration Rate (MIR, Huang et al. 2024,
arXiv 2410.07167) used by ReGap (Yang et al. 2025, arXiv 2505.24208). Moments accumulate in float64 around a
shift (the first batch's mean) so a large common offset does not cancel digits, and the square roots come
from symmetric eigendecompositions with negative round-off eigenvalues clipped to zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


class RunningMoments:
    """Count, mean, covariance (n - 1 denominator) and mean norm of rows seen batch by batch, in float64."""

    def __init__(self, dim: int):
        self.dim = dim
        self.count = 0
        self.shift: torch.Tensor | None = None
        self.sum = torch.zeros(dim, dtype=torch.float64)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64)
        self.norm_sum = 0.0

    def update(self, rows: torch.Tensor) -> None:
        """Add ``rows`` [n, dim]."""
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"rows must be [n, {self.dim}], got shape {tuple(rows.shape)}")
        rows = rows.detach().to("cpu", torch.float64)
        if not torch.isfinite(rows).all():
            raise ValueError("hidden states hold NaN or inf values; the model's forward pass diverged")
        if len(rows) == 0:
            return
        if self.shift is None:
            self.shift = rows.mean(0)
        centred = rows - self.shift
        self.count += len(rows)
        self.sum += centred.sum(0)
        self.outer += centred.T @ centred
        self.norm_sum += float(rows.norm(dim=1).sum())

    @property
    def mean(self) -> torch.Tensor:
        return self.shift + self.sum / self.count

    @property
    def covariance(self) -> torch.Tensor:
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 rows, got {self.count}; measure on more pairs")
        centred_mean = self.sum / self.count
        return (self.outer - self.count * torch.outer(centred_mean, centred_mean)) / (self.count - 1)

    @property
    def mean_norm(self) -> float:
        return self.norm_sum / self.count


def sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix (eigendecomposition, eigenvalues clipped at 0)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(mu_x: torch.Tensor, cov_x: torch.Tensor, mu_y: torch.Tensor, cov_y: torch.Tensor) -> float:
    """||mu_x - mu_y||^2 + Tr(S_x + S_y - 2 (S_x^1/2 S_y S_x^1/2)^1/2) between two Gaussians, in float64."""
    mu_x, cov_x, mu_y, cov_y = (t.to(torch.float64) for t in (mu_x, cov_x, mu_y, cov_y))
    root_x = sqrtm_psd(cov_x)
    middle = root_x @ cov_y @ root_x
    cross = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    return float((mu_x - mu_y).square().sum() + torch.trace(cov_x) + torch.trace(cov_y) - 2 * cross)


@dataclass(frozen=True)
class LayerGap:
    """The gap of one layer (module docstring); ``scale`` is the mean text-token norm s used to rescale."""

    frechet: float
    distance: float
    cosine_gap: float
    scale: float
    image_norm: float


def layer_gap(image: RunningMoments, text: RunningMoments) -> LayerGap:
    """Frechet distance, mean distance and cosine gap of one layer after rescaling both sides by s."""
    scale = text.mean_norm
    if scale <= 0:
        raise ValueError("the text tokens have zero norm: cannot rescale by the mean text-token norm")
    mu_x, mu_y = image.mean, text.mean
    frechet = frechet_distance(mu_x, image.covariance, mu_y, text.covariance) / scale**2
    cosine = torch.nn.functional.cosine_similarity(mu_x, mu_y, dim=0)
    return LayerGap(
        frechet=frechet,
        distance=float((mu_x - mu_y).norm()) / scale,
        cosine_gap=float(1 - cosine),
        scale=scale,
        image_norm=image.mean_norm,
    )


__all__ = ["LayerGap", "RunningMoments", "frechet_distance", "layer_gap", "sqrtm_psd"]
