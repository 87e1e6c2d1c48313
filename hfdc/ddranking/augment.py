"""Batch augmentations of the DD-Ranking protocol: DSA, mixup, cutmix (on images only, as ``ddranking`` 0.2.0).

DSA (Zhao & Bilen, ICML 2021) applies one transform, drawn per batch, with parameters drawn per image: scale
(x 1/1.2..1.2), rotate (+-15 deg), flip (p 0.5), color (brightness +-0.5, saturation x0..2, contrast x0.5..1.5),
crop (shift +-12.5%), cutout (a 50% square zeroed). Mixup blends each image with another of the batch
(lambda ~ Beta(beta, beta)); cutmix pastes a box of another image (area 1 - lambda). Labels are left as they
are: with the teacher soft-label mode the teacher labels the augmented images. Randomness comes from torch's
global generator (seeded per evaluation run), drawn on the images' device.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

AUGMENTATIONS = ("none", "dsa", "mixup", "cutmix")


def _affine(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(images.shape), align_corners=True)
    return F.grid_sample(images, grid, align_corners=True)


def _scale(x: torch.Tensor) -> torch.Tensor:
    ratio = 1.2
    s = torch.rand(len(x), 2, device=x.device) * (ratio - 1 / ratio) + 1 / ratio
    theta = torch.zeros(len(x), 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1] = s[:, 0], s[:, 1]
    return _affine(x, theta)


def _rotate(x: torch.Tensor) -> torch.Tensor:
    angle = (torch.rand(len(x), device=x.device) - 0.5) * 2 * 15 / 180 * math.pi
    theta = torch.zeros(len(x), 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 1] = angle.cos(), -angle.sin()
    theta[:, 1, 0], theta[:, 1, 1] = angle.sin(), angle.cos()
    return _affine(x, theta)


def _flip(x: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.rand(len(x), 1, 1, 1, device=x.device) < 0.5, x.flip(3), x)


def _color(x: torch.Tensor) -> torch.Tensor:
    x = x + (torch.rand(len(x), 1, 1, 1, device=x.device) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(len(x), 1, 1, 1, device=x.device) * 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(len(x), 1, 1, 1, device=x.device) + 0.5) + mean


def _crop(x: torch.Tensor) -> torch.Tensor:
    shift = (torch.rand(len(x), 2, device=x.device) - 0.5) * 2 * 0.125 * 2  # affine units: the image spans [-1, 1]
    theta = torch.zeros(len(x), 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = shift
    return _affine(x, theta)


def _cutout(x: torch.Tensor) -> torch.Tensor:
    height, width = x.shape[-2:]
    size_h, size_w = int(height * 0.5 + 0.5), int(width * 0.5 + 0.5)
    top = torch.randint(0, height - size_h + 1, (len(x),), device=x.device)
    left = torch.randint(0, width - size_w + 1, (len(x),), device=x.device)
    rows, cols = (
        torch.arange(height, device=x.device)[None, :, None],
        torch.arange(width, device=x.device)[None, None, :],
    )
    inside = (
        (rows >= top[:, None, None])
        & (rows < (top + size_h)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + size_w)[:, None, None])
    )
    return x * (~inside).unsqueeze(1).to(x.dtype)


DSA_TRANSFORMS = (_scale, _rotate, _flip, _color, _crop, _cutout)


def dsa(images: torch.Tensor) -> torch.Tensor:
    """One DSA transform (drawn for the batch) with per-image parameters."""
    return DSA_TRANSFORMS[int(torch.randint(len(DSA_TRANSFORMS), (1,)))](images).contiguous()


def mixup(images: torch.Tensor, beta: float) -> torch.Tensor:
    """lambda * x + (1 - lambda) * x[perm], lambda ~ Beta(beta, beta)."""
    lam = torch.distributions.Beta(beta, beta).sample()
    return lam * images + (1 - lam) * images[torch.randperm(len(images))]


def cutmix(images: torch.Tensor, beta: float) -> torch.Tensor:
    """Paste a box of area (1 - lambda) of x[perm] into x, lambda ~ Beta(beta, beta), centre uniform."""
    lam = float(torch.distributions.Beta(beta, beta).sample())
    height, width = images.shape[-2:]
    cut_h, cut_w = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
    cy, cx = int(torch.randint(height, (1,))), int(torch.randint(width, (1,)))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = images[torch.randperm(len(images))][:, :, top:bottom, left:right]
    return mixed


def augment(images: torch.Tensor, name: str, beta: float = 1.0) -> torch.Tensor:
    """``images`` through augmentation ``name`` (one of :data:`AUGMENTATIONS`)."""
    if name == "none":
        return images
    if name == "dsa":
        return dsa(images)
    if name == "mixup":
        return mixup(images, beta)
    if name == "cutmix":
        return cutmix(images, beta)
    raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, got {name!r}")
