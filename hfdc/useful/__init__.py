"""USEFUL (Nguyen et al., NeurIPS 2024, arXiv 2404.17768): find slow-learnable examples early, upsample them, retrain.

Pieces: :func:`find_slow_learnable` / :class:`SlowLearnableCallback` (discovery), :func:`upsample`
(datasets operation), :class:`TwoLayerCNN` (the paper's analysis model), :func:`train_useful` (the recipe).
"""

from hfdc.useful.callback import SlowLearnableCallback
from hfdc.useful.config import UsefulConfig
from hfdc.useful.discovery import SlowLearnable, find_slow_learnable, training_outputs
from hfdc.useful.model import TwoLayerCNN, TwoLayerCNNConfig
from hfdc.useful.train import train_useful
from hfdc.useful.upsample import random_indices, upsample

__all__ = [
    "SlowLearnable",
    "SlowLearnableCallback",
    "TwoLayerCNN",
    "TwoLayerCNNConfig",
    "UsefulConfig",
    "find_slow_learnable",
    "random_indices",
    "train_useful",
    "training_outputs",
    "upsample",
]
