"""Per-example loss weights in ``transformers.Trainer``: the loss-upweighting and JTT baselines of USEFUL.

With weights w_i (the ``loss_weight`` column) the batch loss is the weighted mean cross-entropy

    L = sum_i w_i * CE(f(x_i), y_i) / sum_i w_i,

which equals, in expectation over batches, the loss on the data set with row i repeated w_i times
(:func:`hfdc.useful.upsample`). USEFUL (Nguyen et al., NeurIPS 2024, arXiv 2404.17768) compares both; JTT
(Liu et al., ICML 2021, arXiv 2107.09044) weights the misclassified rows.
"""

from __future__ import annotations

import torch
from transformers import Trainer

from hfdc.optim import SamTrainer


class WeightedLossMixin:
    """A Trainer mixin: when the batch has ``loss_weight``, the loss is the weighted mean cross-entropy above."""

    loss_is_scaled_for_ga = False  # a per-batch mean: Trainer divides it by the gradient accumulation steps

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "loss_weight" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = dict(inputs)
        weights, labels = inputs.pop("loss_weight").float(), inputs.pop("labels")
        outputs = model(**inputs)
        losses = torch.nn.functional.cross_entropy(outputs.logits.float(), labels.long(), reduction="none")
        loss = (weights * losses).sum() / weights.sum()
        return (loss, outputs) if return_outputs else loss


class WeightedLossTrainer(WeightedLossMixin, Trainer):
    """``Trainer`` with per-example loss weights (see :class:`WeightedLossMixin`)."""


class WeightedLossSamTrainer(WeightedLossMixin, SamTrainer):
    """``SamTrainer`` with per-example loss weights (see :class:`WeightedLossMixin`)."""
