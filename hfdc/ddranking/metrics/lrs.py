"""Label-robust score (DD-Ranking, arXiv 2505.13300) as an ``evaluate`` metric: one row per evaluation run."""

import hfdc.ddranking.metrics as metrics
from hfdc.ddranking.scores import hlr, ior, lrs


class LabelRobustScore(metrics.ScoreMetric):
    DESCRIPTION = (
        "LRS = N(w * IOR - (1 - w) * HLR), N(a) = (e^a - e^-1) / (e - e^-1), in [0, 1] for accuracies in [0, 1] "
        "(the ddranking package feeds percentages into exp; divide its accuracies by 100 to compare)."
    )
    INPUTS = ("full_accuracy", "distilled_hard_accuracy", "distilled_accuracy", "random_accuracy")
    INPUTS_DESCRIPTION = (
        "full_accuracy, distilled_hard_accuracy (hard labels), distilled_accuracy, random_accuracy (the method's "
        "evaluation): per-run fractions; weight (default 0.5). Returns lrs, hlr, ior and their _std."
    )

    def _compute(self, full_accuracy, distilled_hard_accuracy, distilled_accuracy, random_accuracy, weight=0.5):
        recovery = hlr(full_accuracy, distilled_hard_accuracy)
        improvement = ior(distilled_accuracy, random_accuracy)
        return metrics.summarise(lrs=lrs(recovery, improvement, weight), hlr=recovery, ior=improvement)
