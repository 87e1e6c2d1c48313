"""DD-Ranking scores as local ``evaluate`` metric modules (the Hub's ``evaluate.load("name")`` is not needed).

    import evaluate
    from hfdc.ddranking import metric_path

    lrs = evaluate.load(metric_path("lrs"))
    lrs.compute(full_accuracy=[0.71, 0.70], distilled_hard_accuracy=[0.42, 0.44],
                distilled_accuracy=[0.55, 0.57], random_accuracy=[0.50, 0.49])

One row per evaluation run; each module returns the mean and the standard deviation over the runs. The modules
(hlr.py, ior.py, lrs.py, ars.py) hold one import per line and subclass :class:`ScoreMetric`.
"""

import datasets
import evaluate

from hfdc.ddranking.scores import mean_std

CITATION = "Li et al., DD-Ranking: Rethinking the Evaluation of Dataset Distillation, arXiv 2505.13300 (2025)."


class ScoreMetric(evaluate.Metric):
    """A DD-Ranking score module: per-run accuracies (float64 columns named in ``INPUTS``) -> mean and std."""

    DESCRIPTION = ""
    INPUTS: tuple[str, ...] = ()
    INPUTS_DESCRIPTION = ""

    def _info(self):
        return evaluate.MetricInfo(
            description=self.DESCRIPTION,
            citation=CITATION,
            inputs_description=self.INPUTS_DESCRIPTION,
            features=datasets.Features({name: datasets.Value("float64") for name in self.INPUTS}),
        )


def summarise(**per_run) -> dict[str, float]:
    """name -> mean and name_std -> standard deviation (ddof=0) of each per-run score."""
    result = {}
    for name, values in per_run.items():
        result[name], result[f"{name}_std"] = mean_std(values)
    return result
