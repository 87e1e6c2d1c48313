"""DD-Ranking: label- and augmentation-robust scores of distilled data sets.

Li et al., "DD-Ranking: Rethinking the Evaluation of Dataset Distillation", arXiv 2505.13300 (package
``ddranking`` 0.2.0). :func:`hlr`, :func:`ior`, :func:`lrs`, :func:`ars` take accuracies as fractions and stay in
[0, 1] (the package feeds percentages into exp); the same scores ship as local ``evaluate`` modules
(``evaluate.load(metric_path("lrs"))``); :class:`Evaluator` trains the evaluation models under the protocol.
"""

import importlib.resources

from hfdc.ddranking.config import DDRankingConfig, ProtocolConfig
from hfdc.ddranking.evaluator import Evaluator
from hfdc.ddranking.scores import ars, hlr, ior, lrs, mean_std, normalised_exp

METRIC_MODULES = ("hlr", "ior", "lrs", "ars")


def metric_path(name: str) -> str:
    """The file of the local ``evaluate`` module of score ``name`` (hlr, ior, lrs, ars) for ``evaluate.load``."""
    if name not in METRIC_MODULES:
        raise ValueError(f"no DD-Ranking metric module {name!r}; choose one of {METRIC_MODULES}")
    return str(importlib.resources.files("hfdc.ddranking.metrics") / f"{name}.py")


__all__ = [
    "METRIC_MODULES",
    "DDRankingConfig",
    "Evaluator",
    "ProtocolConfig",
    "ars",
    "hlr",
    "ior",
    "lrs",
    "mean_std",
    "metric_path",
    "normalised_exp",
]
