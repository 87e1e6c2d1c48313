"""Sharpness-aware minimisation (SAM) and its adaptive variant (ASAM) as a wrapper around any optimizer.

SAM (Foret et al., "Sharpness-Aware Minimization for Efficiently Improving Generalization", ICLR 2021,
arXiv 2010.01412) takes the base optimizer's step with the gradient at the worst-case nearby point:

    e(w) = rho * g / ||g||,          w <- base_step(w, grad L(w + e(w)))

ASAM (Kwon et al., ICML 2021, arXiv 2102.11600) scales the neighbourhood by the weights, T_w = |w| + eta
(eta > 0, so a zero-initialised parameter is still perturbed):

    e(w) = rho * T_w^2 g / ||T_w g||

The perturbed pass must not move BatchNorm's running statistics a second time (the reference
implementations freeze them): :func:`frozen_batch_norm_statistics`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn


@contextlib.contextmanager
def frozen_batch_norm_statistics(model: nn.Module) -> Iterator[None]:
    """Within the block, BatchNorm layers still normalise with the batch statistics in training mode but update
    neither ``running_mean`` / ``running_var`` nor ``num_batches_tracked`` (``track_running_stats`` off, then
    restored): SAM's second, perturbed forward pass."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for layer in layers:
        layer.track_running_stats = False
    try:
        yield
    finally:
        for layer in layers:
            layer.track_running_stats = True


class SAM(torch.optim.Optimizer):
    """Two-pass SAM/ASAM around ``base_optimizer`` (its param groups are shared, so LR schedulers work).

    Use either ``step(closure)`` (the closure recomputes loss and gradients), or the split form that
    ``SamTrainer`` uses: backward at w, ``perturb()``, backward at w + e(w), ``step()``. ``eta`` is ASAM's
    offset in T_w = |w| + eta. With BatchNorm, run the second pass inside :func:`frozen_batch_norm_statistics`.
    """

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        adaptive: bool = False,
        eta: float = 0.01,
        eps: float = 1e-12,
    ):
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(f"base_optimizer must be a torch.optim.Optimizer, got {type(base_optimizer).__name__}")
        if rho <= 0:
            raise ValueError(f"rho must be > 0 (the neighbourhood radius), got {rho}")
        if eta < 0:
            raise ValueError(f"eta must be >= 0 (ASAM's T_w = |w| + eta), got {eta}")
        super().__init__(base_optimizer.param_groups, base_optimizer.defaults)
        self.base_optimizer = base_optimizer
        self.rho, self.adaptive, self.eta, self.eps = rho, adaptive, eta, eps
        # Share groups and state with the base optimizer: LR schedulers and checkpoints see one set.
        self.param_groups = base_optimizer.param_groups
        self.state = base_optimizer.state
        self._perturbation: dict[torch.nn.Parameter, torch.Tensor] = {}

    def _scale(self, p: torch.Tensor) -> torch.Tensor | float:
        return p.detach().abs() + self.eta if self.adaptive else 1.0

    @torch.no_grad()
    def perturb(self) -> None:
        """Move every parameter to w + e(w) using its current gradient, remember e(w), zero the gradients."""
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            raise ValueError("SAM.perturb() needs gradients: call loss.backward() first")
        grad_norm = torch.norm(torch.stack([(self._scale(p) * p.grad).norm(2) for p in params]), 2)
        scale = self.rho / (grad_norm + self.eps)
        for p in params:
            e_w = (self._scale(p) ** 2) * p.grad * scale
            p.add_(e_w)
            self._perturbation[p] = e_w
        self.zero_grad()

    @torch.no_grad()
    def restore(self) -> None:
        """Move the parameters back from w + e(w) to w (the gradients stay those taken at w + e(w))."""
        for p, e_w in self._perturbation.items():
            p.sub_(e_w)
        self._perturbation.clear()

    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        """Full SAM step with ``closure``; without one, finish a step begun by :meth:`perturb`."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
            self.perturb()
            with torch.enable_grad():
                closure()
        elif not self._perturbation:
            raise ValueError("SAM.step() without a closure must follow perturb() and a second backward pass")
        self.restore()
        self.base_optimizer.step()
        return loss

    def state_dict(self):
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict):
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
