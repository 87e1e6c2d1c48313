"""Augmentation-robust score (DD-Ranking, arXiv 2505.13300) as an ``evaluate`` metric: one row per evaluation run."""

import hfdc.ddranking.metrics as metrics
from hfdc.ddranking.scores import ars, ior


class AugmentationRobustScore(metrics.ScoreMetric):
    DESCRIPTION = (
        "ARS = N(w * (Acc_syn_aug - Acc_rand_aug) + (1 - w) * (Acc_syn - Acc_rand)), N(a) = (e^a - e^-1) / (e - e^-1), "
        "in [0, 1] for accuracies in [0, 1] (the ddranking package feeds percentages into exp)."
    )
    INPUTS = ("distilled_augmented_accuracy", "random_augmented_accuracy", "distilled_accuracy", "random_accuracy")
    INPUTS_DESCRIPTION = (
        "distilled_augmented_accuracy, random_augmented_accuracy (with augmentation), distilled_accuracy, "
        "random_accuracy (without): per-run fractions; weight (default 0.5). Returns ars, ars_std."
    )

    def _compute(
        self, distilled_augmented_accuracy, random_augmented_accuracy, distilled_accuracy, random_accuracy, weight=0.5
    ):
        with_aug = ior(distilled_augmented_accuracy, random_augmented_accuracy)
        return metrics.summarise(ars=ars(with_aug, ior(distilled_accuracy, random_accuracy), weight))
