"""The student encoder of MKDT: built for the teacher's dimension, run with given parameters, fitted by KD (MSE)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn.functional import mse_loss
from tqdm.auto import tqdm

from hfdc.models import tiny


def new_student(config, images: torch.Tensor, dim: int, seed: int):
    """A fresh ``config.student`` (ConvNet) for ``images`` (on their device) whose head predicts ``dim``-d teacher
    representations."""
    return (
        tiny(
            config.student,
            seed=seed,
            num_channels=images.shape[1],
            image_size=images.shape[-1],
            num_labels=dim,
            **config.student_params,
        )
        .to(images.device)
        .train()
    )


def outputs(model, images: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """The student's head output f(x) (its ``logits``), with ``params`` in place of its own when given."""
    out = model(images) if params is None else torch.func.functional_call(model, params, (images,))
    return getattr(out, "logits", out)


def fit(
    model,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    lr: float,
    epochs: int,
    batch_size: int,
    momentum: float,
    weight_decay: float,
    generator: torch.Generator,
    on_epoch: Callable[[int, torch.nn.Module], None] | None = None,
    desc: str = "KD",
) -> torch.nn.Module:
    """SGD on MSE(f(x), y) for ``epochs`` epochs over shuffled batches (order from ``generator``); calls
    ``on_epoch(epoch, model)`` after each epoch (1-based). Used by the expert trajectories and by pre-training."""
    if len(images) != len(targets):
        raise ValueError(f"{len(images)} images but {len(targets)} target vectors; they must be aligned row by row")
    optimizer = torch.optim.SGD(model.parameters(), lr=float(lr), momentum=momentum, weight_decay=weight_decay)
    model.train()
    for epoch in tqdm(range(1, epochs + 1), desc=desc, leave=False):
        for batch in torch.randperm(len(images), generator=generator).split(batch_size):
            loss = mse_loss(outputs(model, images[batch]), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if on_epoch is not None:
            on_epoch(epoch, model)
    return model
