"""The trajectory-matching loss of MKDT / MTT (Cazenavette et al., 2022; Joshi et al., 2025, arXiv 2410.02116).

From expert parameters theta*_t, run N differentiable SGD steps on the synthetic set (X_s, Y_s) with step size eta:

    theta_{k+1} = theta_k - eta * grad_theta MSE(f_theta_k(X_b), Y_b),   theta_0 = theta*_t

    loss = ||theta_N - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2

The loss is differentiable in X_s, Y_s and eta (second-order: every step keeps its graph).
"""

from __future__ import annotations

import torch
from torch.nn.functional import mse_loss

from hfdc.mkdt.student import outputs


def student_steps(
    model,
    start: dict[str, torch.Tensor],
    images: torch.Tensor,
    targets: torch.Tensor,
    lr: torch.Tensor,
    steps: int,
    batch_size: int,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """theta_N after ``steps`` differentiable SGD steps from ``start``; batches of ``batch_size`` rows are drawn
    without replacement (a new permutation from ``generator`` once one is used up); 0 = every row each step."""
    names = list(start)
    params = [start[name].detach().clone().requires_grad_(True) for name in names]
    chunks: list[torch.Tensor] = []
    for _ in range(steps):
        if batch_size and batch_size < len(images):
            if not chunks:
                chunks = list(torch.randperm(len(images), generator=generator).split(batch_size))
            batch = chunks.pop()
            x, y = images[batch], targets[batch]
        else:
            x, y = images, targets
        loss = mse_loss(outputs(model, x, dict(zip(names, params))), y)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        params = [p - lr * g for p, g in zip(params, grads)]
    return dict(zip(names, params))


def matching_loss(
    model,
    start: dict[str, torch.Tensor],
    target: dict[str, torch.Tensor],
    images: torch.Tensor,
    targets: torch.Tensor,
    lr: torch.Tensor,
    steps: int,
    batch_size: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """||theta_N - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2 (see the module docstring)."""
    end = student_steps(model, start, images, targets, lr, steps, batch_size, generator)
    reached = sum(((end[name] - target[name]) ** 2).sum() for name in start)
    travelled = sum(((start[name] - target[name]) ** 2).sum() for name in start)
    return reached / travelled
