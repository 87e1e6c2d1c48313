"""Optimisers the data-centric methods compare against: SAM and ASAM, usable with ``transformers.Trainer``."""

from hfdc.optim.sam import SAM, frozen_batch_norm_statistics
from hfdc.optim.trainer import SamTrainer

__all__ = ["SAM", "SamTrainer", "frozen_batch_norm_statistics"]
