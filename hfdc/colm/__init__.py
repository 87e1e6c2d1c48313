"""CoLM: mini-batch coresets for memory-efficient LM training on data mixtures (Nguyen et al. 2025, arXiv 2407.19580)."""

from hfdc.colm.config import ColmConfig
from hfdc.colm.features import ZerothOrderFeatures, find_parameter_block, zeroth_order_features
from hfdc.colm.moments import FeatureMatrix, FeatureMoments
from hfdc.colm.selection import matching_error, matching_errors, select_small_batch
from hfdc.colm.trainer import ColmTrainer, SourceCollator

__all__ = [
    "ColmConfig",
    "ColmTrainer",
    "FeatureMatrix",
    "FeatureMoments",
    "SourceCollator",
    "ZerothOrderFeatures",
    "find_parameter_block",
    "matching_error",
    "matching_errors",
    "select_small_batch",
    "zeroth_order_features",
]
