"""Improvement over random (DD-Ranking, arXiv 2505.13300) as an ``evaluate`` metric: one row per evaluation run."""

import hfdc.ddranking.metrics as metrics
from hfdc.ddranking.scores import ior


class ImprovementOverRandom(metrics.ScoreMetric):
    DESCRIPTION = "IOR = Acc(distilled data) - Acc(random real subset, same evaluation); accuracies in [0, 1]."
    INPUTS = ("distilled_accuracy", "random_accuracy")
    INPUTS_DESCRIPTION = "distilled_accuracy, random_accuracy: per-run accuracies (fractions). Returns ior, ior_std."

    def _compute(self, distilled_accuracy, random_accuracy):
        return metrics.summarise(ior=ior(distilled_accuracy, random_accuracy))
