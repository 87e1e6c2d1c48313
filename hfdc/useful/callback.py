"""``SlowLearnableCallback``: run USEFUL's discovery at epoch t (or once training error flattens) inside Trainer."""

from __future__ import annotations

import logging

from transformers import TrainerCallback

from hfdc.useful.discovery import SlowLearnable, find_slow_learnable, training_outputs

logger = logging.getLogger(__name__)


class SlowLearnableCallback(TrainerCallback):
    """At the end of epoch ``epoch`` (or, with ``epoch=None``, the first epoch whose training-error drop is
    below ``flatten_tol`` after the error started falling), cluster the training outputs and store the
    :class:`SlowLearnable` result in ``self.result``; with ``stop_training`` the Trainer stops there.

    ``dataset`` / ``data_collator`` are the training rows in their original order (the Trainer's own
    loader is shuffled). ``errors`` keeps the per-epoch training error seen while waiting to flatten.
    """

    def __init__(
        self,
        dataset,
        data_collator,
        epoch: int | None = 2,
        flatten_tol: float = 0.01,
        method: str = "kmeans",
        quantile: float = 0.5,
        seed: int = 0,
        stop_training: bool = True,
        batch_size: int = 256,
    ):
        if epoch is not None and epoch < 1:
            raise ValueError(f"separation epoch must be >= 1, got {epoch}")
        self.dataset, self.data_collator, self.batch_size = dataset, data_collator, batch_size
        self.epoch, self.flatten_tol, self.method, self.quantile, self.seed = (
            epoch,
            flatten_tol,
            method,
            quantile,
            seed,
        )
        self.stop_training = stop_training
        self.result: SlowLearnable | None = None
        self.errors: list[float] = []

    def on_train_begin(self, args, state, control, **kwargs):
        if self.epoch is not None and self.epoch > state.num_train_epochs:
            raise ValueError(
                f"separation epoch {self.epoch} is beyond the training length ({state.num_train_epochs} epochs); "
                "choose an epoch <= num_train_epochs (USEFUL uses about 5-10% of the budget)"
            )

    def _flattened(self, error: float) -> bool:
        self.errors.append(error)
        if len(self.errors) < 2:
            return False
        started_falling = min(self.errors) < self.errors[0] - self.flatten_tol
        return started_falling and self.errors[-2] - error < self.flatten_tol

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self.result is not None:
            return
        epoch = round(state.epoch)
        if self.epoch is not None and epoch != self.epoch:
            return
        logits, labels = training_outputs(model, self.dataset, self.data_collator, self.batch_size)
        if self.epoch is None:
            error = float((logits.argmax(1) != labels).float().mean())
            if not self._flattened(error):
                return
        self.result = find_slow_learnable(logits, labels, self.method, self.quantile, self.seed, epoch=epoch)
        logger.info(
            "epoch %d: %d slow-learnable examples (%.1f%%)",
            epoch,
            len(self.result.indices),
            100 * self.result.stats["fraction"],
        )
        if self.stop_training:
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        if self.result is None and self.epoch is None:
            raise ValueError(
                f"training error never flattened (drop < flatten_tol={self.flatten_tol}) within {state.num_train_epochs} "
                f"epochs (errors: {[round(e, 3) for e in self.errors]}); raise flatten_tol or set an explicit epoch"
            )
