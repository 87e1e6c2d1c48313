"""USEFUL (Nguyen et al., NeurIPS 2024, arXiv 2404.17768): find slow-learnable examples early, upsample them, retrain.

Pieces: :func:`find_slow_learnable` / :class:`SlowLearnableCallback` (discovery), :func:`discover` (train to
epoch t and partition), :func:`choose_rows` (targeted / random / full / none rows, shared with TADA),
:func:`upsample` / :func:`upweight` (datasets operations; the loss weights are read by
:class:`WeightedLossTrainer`), :func:`train_useful` (the recipe). The paper's analysis model is
:class:`hfdc.models.TwoLayerCNN`.
"""

from hfdc.useful.callback import SlowLearnableCallback
from hfdc.useful.config import EMPHASIS, ROWS, DiscoveryConfig, UsefulConfig
from hfdc.useful.data import load_splits, model_inputs, training_inputs
from hfdc.useful.discovery import SlowLearnable, find_slow_learnable, training_outputs
from hfdc.useful.train import (
    UsefulResult,
    accuracy,
    choose_rows,
    discover,
    emphasise,
    make_trainer,
    new_model,
    train_useful,
)
from hfdc.useful.upsample import random_indices, upsample, upweight
from hfdc.useful.weighting import WeightedLossMixin, WeightedLossSamTrainer, WeightedLossTrainer

__all__ = [
    "ROWS",
    "EMPHASIS",
    "DiscoveryConfig",
    "SlowLearnable",
    "SlowLearnableCallback",
    "UsefulConfig",
    "UsefulResult",
    "WeightedLossMixin",
    "WeightedLossSamTrainer",
    "WeightedLossTrainer",
    "accuracy",
    "choose_rows",
    "discover",
    "emphasise",
    "find_slow_learnable",
    "load_splits",
    "make_trainer",
    "model_inputs",
    "new_model",
    "random_indices",
    "train_useful",
    "training_inputs",
    "training_outputs",
    "upsample",
    "upweight",
]
