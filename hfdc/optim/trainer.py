"""``SamTrainer``: a ``transformers.Trainer`` that takes SAM / ASAM steps (two forward-backward passes per step)."""

from __future__ import annotations

from transformers import Trainer

from hfdc.optim.sam import SAM, frozen_batch_norm_statistics


class SamTrainer(Trainer):
    """Trainer whose optimizer (built from ``args.optim`` as usual) is wrapped in :class:`SAM`.

    Each training step: backward at w, perturb to w + e(w), backward again, and the Trainer's own
    clipping + ``optimizer.step()`` restores w and applies the base update with grad L(w + e(w)).
    BatchNorm running statistics move on the first pass only. ``rho`` is the neighbourhood radius,
    ``adaptive`` switches to ASAM with offset ``eta``.
    """

    def __init__(self, *args, rho: float = 0.05, adaptive: bool = False, eta: float = 0.01, **kwargs):
        super().__init__(*args, **kwargs)
        if rho <= 0:
            raise ValueError(f"rho must be > 0 for SamTrainer (got {rho}); use a plain Trainer for rho = 0")
        if self.args.gradient_accumulation_steps != 1:
            raise ValueError(
                "SamTrainer needs gradient_accumulation_steps=1 (each SAM step perturbs with one batch's "
                f"gradient), got {self.args.gradient_accumulation_steps}; raise per_device_train_batch_size instead"
            )
        self.rho, self.adaptive, self.eta = rho, adaptive, eta

    def create_optimizer(self, model=None):
        if not isinstance(self.optimizer, SAM):
            super().create_optimizer(model)
            self.optimizer = SAM(self.optimizer, rho=self.rho, adaptive=self.adaptive, eta=self.eta)
        return self.optimizer

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        sam = getattr(self.optimizer, "optimizer", self.optimizer)  # unwrap accelerate's AcceleratedOptimizer
        sam.perturb()
        with frozen_batch_norm_statistics(model):
            super().training_step(model, inputs, num_items_in_batch)
        return loss
