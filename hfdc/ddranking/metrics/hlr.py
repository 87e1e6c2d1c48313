"""Hard label recovery (DD-Ranking, arXiv 2505.13300) as an ``evaluate`` metric: one row per evaluation run."""

import hfdc.ddranking.metrics as metrics
from hfdc.ddranking.scores import hlr


class HardLabelRecovery(metrics.ScoreMetric):
    DESCRIPTION = "HLR = Acc(full real data, hard labels) - Acc(distilled data, hard labels); accuracies in [0, 1]."
    INPUTS = ("full_accuracy", "distilled_accuracy")
    INPUTS_DESCRIPTION = "full_accuracy, distilled_accuracy: per-run accuracies (fractions). Returns hlr, hlr_std."

    def _compute(self, full_accuracy, distilled_accuracy):
        return metrics.summarise(hlr=hlr(full_accuracy, distilled_accuracy))
