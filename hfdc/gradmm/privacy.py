"""Differential privacy of the class targets: per-example clipping and the Gaussian mechanism.

Each real example's gradient is clipped to norm C; the mean over B examples then moves by at most C/B when one
example changes, and Gaussian noise with ``std = (C / B) sqrt(2 ln(1.25 / delta)) / epsilon`` makes the target
(epsilon, delta)-DP for epsilon <= 1 (Dwork & Roth, Thm. A.1; GRADMM, arXiv 2502.17607, Sec. 4.3).
"""

from __future__ import annotations

import math

import torch


def clip_to_norm(grads, max_norm: float) -> list[torch.Tensor]:
    """``grads`` scaled by ``min(1, max_norm / ||grads||)``, the norm taken over all tensors together."""
    norm = torch.sqrt(sum(g.detach().square().sum() for g in grads))
    factor = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    return [g * factor for g in grads]


def dp_noise_std(clip_norm: float, batch_size: int, epsilon: float, delta: float) -> float:
    """Noise std of the Gaussian mechanism on a mean of ``batch_size`` gradients clipped to ``clip_norm``."""
    if not 0 < epsilon <= 1:
        raise ValueError(f"dp_epsilon must lie in (0, 1], got {epsilon}")
    if not 0 < delta < 1:
        raise ValueError(f"dp_delta must lie in (0, 1), got {delta}")
    return clip_norm / batch_size * math.sqrt(2 * math.log(1.25 / delta)) / epsilon


def add_dp_noise(grads, std: float, generator: torch.Generator) -> list[torch.Tensor]:
    """``grads`` plus independent N(0, std^2) noise per entry, drawn on the CPU from ``generator`` (same on any device)."""
    return [g + std * torch.randn(g.shape, generator=generator, dtype=g.dtype).to(g.device) for g in grads]
