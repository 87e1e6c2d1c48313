"""A self-supervised teacher for MKDT: BarlowTwins (Zbontar et al., ICML 2021, arXiv 2103.03230) with Trainer.

Two random views of each image go through the encoder and a projector; with z standardised over the batch,

    C = z1^T z2 / batch,    loss = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2

The encoder is an hfdc classifier whose head is the projector's first linear layer, so its ``embed`` (the
backbone feature) is the teacher representation MKDT distils. Under ``accelerate launch`` Trainer runs DDP and
C is computed per device batch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from datasets import Dataset
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from hfdc.models import tiny
from hfdc.models.images import image_mode, pixel_values


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, off_diagonal_weight: float) -> torch.Tensor:
    """sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 with C the batch cross-correlation of standardised z."""
    n = len(z1)
    z1 = (z1 - z1.mean(0)) / z1.std(0, unbiased=False).clamp_min(1e-6)
    z2 = (z2 - z2.mean(0)) / z2.std(0, unbiased=False).clamp_min(1e-6)
    c = z1.T @ z2 / n
    diagonal = torch.diagonal(c)
    return ((1 - diagonal) ** 2).sum() + off_diagonal_weight * ((c**2).sum() - (diagonal**2).sum())


def random_view(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random view of each [-1, 1] image: resized crop (area 25-100%), horizontal flip, and, with probability
    0.8, brightness (+-0.4) and contrast (x0.6-1.4) jitter."""
    n = len(images)
    rand = torch.rand(n, 6, generator=generator)
    scale = (0.25 + 0.75 * rand[:, 0]).sqrt()
    flip = torch.where(rand[:, 1] < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, 0, 2], theta[:, 1, 2] = (1 - scale) * (2 * rand[:, 2] - 1), (1 - scale) * (2 * rand[:, 3] - 1)
    grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    views = nn.functional.grid_sample(images, grid, padding_mode="reflection", align_corners=False)
    jitter = (torch.rand(n, generator=generator) < 0.8).float()[:, None, None, None]
    brightness = (0.8 * rand[:, 4] - 0.4)[:, None, None, None]
    contrast = (0.6 + 0.8 * rand[:, 5])[:, None, None, None]
    mean = views.mean(dim=(1, 2, 3), keepdim=True)
    jittered = (views - mean) * contrast + mean + brightness
    return (jitter * jittered + (1 - jitter) * views).clamp(-1, 1)


class BarlowTwins(nn.Module):
    """encoder (its head = projector layer 1) -> BatchNorm -> ReLU -> Linear; forward(view1, view2) -> loss."""

    def __init__(self, encoder: nn.Module, projector_dim: int, off_diagonal_weight: float):
        super().__init__()
        self.encoder = encoder
        self.projector = nn.Sequential(
            nn.BatchNorm1d(projector_dim), nn.ReLU(), nn.Linear(projector_dim, projector_dim, bias=False)
        )
        self.off_diagonal_weight = off_diagonal_weight

    def project(self, images: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(images).logits)

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": barlow_twins_loss(self.project(view1), self.project(view2), self.off_diagonal_weight)}


class ViewsCollator:
    """Batches rows into two random views of their images (``pixel_values`` then :func:`random_view`)."""

    def __init__(self, image_column: str, mode: str, size: int | None):
        self.image_column, self.mode, self.size = image_column, mode, size

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        images = pixel_values([row[self.image_column] for row in rows], self.mode, self.size)
        return {"view1": random_view(images), "view2": random_view(images)}


def ssl_arguments(config, output_dir: Path, batch_size: int) -> TrainingArguments:
    """Trainer arguments of the BarlowTwins stage (AdamW, cosine schedule, a checkpoint per epoch)."""
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=config.ssl_epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=config.ssl_learning_rate,
        weight_decay=config.ssl_weight_decay,
        lr_scheduler_type="cosine",
        save_strategy="epoch",
        save_total_limit=1,
        logging_steps=50,
        report_to="none",
        seed=config.seed,
        dataloader_drop_last=True,
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
    )


def train_barlow_twins(config, train: Dataset, output_dir) -> nn.Module:
    """Train ``config.ssl_encoder`` with BarlowTwins on ``train``'s images (resuming from the last checkpoint under
    ``output_dir``); returns the encoder in eval mode."""
    if len(train) < 4:
        raise ValueError(f"BarlowTwins needs at least 4 training images, got {len(train)}")
    mode, size = image_mode(train, config.image_column), config.image_size or None
    first = pixel_values([train[0][config.image_column]], mode, size)
    encoder = tiny(
        config.ssl_encoder,
        seed=config.seed,
        num_channels=first.shape[1],
        image_size=first.shape[-1],
        num_labels=config.ssl_projector_dim,
        **config.ssl_encoder_params,
    ).train()
    model = BarlowTwins(encoder, config.ssl_projector_dim, config.ssl_lambda)
    trainer = Trainer(
        model=model,
        args=ssl_arguments(config, Path(output_dir), min(config.ssl_batch_size, len(train))),
        train_dataset=train,
        data_collator=ViewsCollator(config.image_column, mode, size),
    )
    last = get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    return encoder.eval()
