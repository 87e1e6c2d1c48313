"""Two-stage hallucination detection on the simulated benchmark: AUROC vs verifier budget, six verifier settings.

For each setting and seed: sample target and verifier answers (N = M = 10) for 500 validation and 1000 test
questions, compute the consistency features with SQuAD-normalised string match, then on the test split report
AUROC/AURAC of semantic entropy alone, cross-consistency alone, the self-consistency combiner (budget 0), the
full cross-consistency combiner (budget 1, every question verified), and the two-stage detector at budgets
10-90% (band fitted on validation), against random routing of the same fraction of questions (the natural
baseline for where to spend verifier calls). Medians over the seeds. Also the time to fit the band (cross-fitted
combiners + the O(n log n) window search) at n = 1k and 10k validation questions, against rescoring every window
(the former O(n^2 log n) search) at n = 1k and 2k.

    python -m benchmarks.hallucination --seeds 3
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from functools import partial

import numpy as np

from benchmarks.common import RESULTS, arguments, machine, median_time, peak_rss_mb, prepare, write_result
from hfdc.hallucination.band import window_aurocs
from hfdc.hallucination.cli import load_questions
from hfdc.hallucination.config import HallucinationConfig
from hfdc.hallucination.detector import TwoStageDetector
from hfdc.hallucination.evaluate import featurize, single_score_rows
from hfdc.hallucination.features import CROSS_FEATURES, SELF_FEATURES
from hfdc.hallucination.metrics import aurac, auroc
from hfdc.hallucination.sampling import sample_answers
from hfdc.hallucination.similarity import normalized_match

BUDGETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SCENARIOS = {
    "peer verifier (default)": {},
    "strong independent verifier": {
        "verifier_alpha": 4.0,
        "verifier_beta": 1.0,
        "verifier_correlation": 0.2,
        "verifier_shared_errors": 0.2,
    },
    "confident hallucinations": {"target_concentration": 0.3},
    "weak verifier": {"verifier_alpha": 1.0, "verifier_beta": 3.0},
    "copy verifier (uninformative)": {"verifier_mode": "copy"},
    "unrelated verifier (uninformative)": {"verifier_mode": "unrelated"},
}


def splits_for(overrides: dict, seed: int):
    config = HallucinationConfig(output_dir="unused", seed=seed, n_validation=500, n_test=1000, **overrides)
    target, verifier, splits = load_questions(config)
    features = {}
    for name, (questions, golds) in splits.items():
        answers = sample_answers(target, questions, config.n_samples, verifier, config.n_verifier_samples, seed=seed)
        features[name] = featurize(questions, answers, golds, normalized_match)
    return config, features


def one_run(overrides: dict, seed: int) -> list[dict]:
    config, f = splits_for(overrides, seed)
    val, test = f["validation"], f["test"]
    single = {r["method"]: r for r in single_score_rows(test)}
    rows = [
        {
            "method": m,
            "budget": None,
            "auroc": single[m]["auroc"],
            "aurac": single[m]["aurac"],
            "verifier_fraction": 0.0 if m == "semantic_entropy" else 1.0,
        }
        for m in ("semantic_entropy", "cross_consistency")
    ]
    rng = np.random.default_rng(seed)
    for budget in BUDGETS:
        start = time.perf_counter()
        detector = TwoStageDetector(budget=budget, seed=seed).fit(val.x_self, val.x_cross, val.labels, val.questions)
        fit_s = time.perf_counter() - start
        out = detector.predict(test.x_self, test.x_cross, test.questions)
        rows.append(
            {
                "method": "two_stage",
                "budget": budget,
                "auroc": auroc(out.scores, test.labels),
                "aurac": aurac(out.scores, test.labels),
                "verifier_fraction": float(out.called_verifier.mean()),
                "fit_s": fit_s,
            }
        )
        # random routing of the same number of test questions, same combiners
        cross = detector.cross_combiner.predict_proba(np.hstack([test.x_self, test.x_cross]))
        chosen = rng.permutation(len(test.labels))[: out.verifier_calls]
        mixed = out.self_scores.copy()
        mixed[chosen] = cross[chosen]
        rows.append(
            {
                "method": "random_routing",
                "budget": budget,
                "auroc": auroc(mixed, test.labels),
                "aurac": aurac(mixed, test.labels),
                "verifier_fraction": out.verifier_calls / len(test.labels),
            }
        )
    error_rate = float(test.labels.mean())
    return [dict(row, seed=seed, hallucination_rate=error_rate) for row in rows]


def summarise(scenario: str, overrides: dict, runs: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["method"], r["budget"]) for r in runs}, key=lambda k: (k[0], -1 if k[1] is None else k[1]))
    full = {r["seed"]: r["auroc"] for r in runs if r["method"] == "two_stage" and r["budget"] == 1.0}
    for method, budget in keys:
        group = [r for r in runs if r["method"] == method and r["budget"] == budget]
        ratios = [r["auroc"] / full[r["seed"]] for r in group]
        row = {
            "scenario": scenario,
            "method": method,
            "budget": budget,
            "auroc_median": statistics.median(r["auroc"] for r in group),
            "auroc_min": min(r["auroc"] for r in group),
            "auroc_max": max(r["auroc"] for r in group),
            "aurac_median": statistics.median(r["aurac"] for r in group),
            "fraction_of_full_cross_auroc_median": statistics.median(ratios),
            "fraction_of_full_cross_auroc_min": min(ratios),
            "fraction_of_full_cross_auroc_max": max(ratios),
            "verifier_fraction_median": statistics.median(r["verifier_fraction"] for r in group),
            "hallucination_rate_median": statistics.median(r["hallucination_rate"] for r in group),
            "seeds": len(group),
        }
        if "fit_s" in group[0]:
            row["fit_seconds_median"] = statistics.median(r["fit_s"] for r in group)
        out.append(row)
    curve = [r for r in out if r["method"] == "two_stage"]
    reach = [r["budget"] for r in curve if r["fraction_of_full_cross_auroc_median"] >= 0.97]
    out.append(
        {
            "scenario": scenario,
            "method": "summary",
            "simulation": {**_defaults(), **overrides},
            "smallest_budget_reaching_97pct_of_full_cross_auroc": min(reach) if reach else None,
        }
    )
    return out


def _defaults() -> dict:
    from hfdc.hallucination.simulate import SimulationParams

    return dataclasses.asdict(SimulationParams())


def plot(rows: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), dpi=110, sharex=True)
    for ax, scenario in zip(axes.ravel(), SCENARIOS):
        sub = [r for r in rows if r.get("scenario") == scenario]
        for method, style, label in (
            ("two_stage", "o-", "two-stage (band fitted on validation)"),
            ("random_routing", "s--", "random routing, same calls"),
        ):
            curve = sorted((r for r in sub if r["method"] == method), key=lambda r: r["budget"])
            ax.plot(
                [r["verifier_fraction_median"] * 100 for r in curve],
                [r["auroc_median"] for r in curve],
                style,
                ms=3,
                label=label,
            )
        full = next(r["auroc_median"] for r in sub if r["method"] == "two_stage" and r["budget"] == 1.0)
        ax.axhline(full * 0.97, color="grey", ls=":", lw=1, label="97% of full cross-consistency")
        se = next(r["auroc_median"] for r in sub if r["method"] == "semantic_entropy")
        ax.axhline(se, color="C3", ls="-.", lw=1, label="semantic entropy alone")
        ax.set_title(scenario, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("test questions sent to the verifier (%)")
    for ax in axes[:, 0]:
        ax.set_ylabel("test AUROC (median over seeds)")
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Simulated benchmark: AUROC vs verifier budget")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def brute_force_band(s, c, labels, order, k) -> float:
    """The former search: rescore the two-stage AUROC of every window from scratch, O(n^2 log n)."""
    best = -1.0
    for start in range(len(s) - k + 1):
        mixed = s.copy()
        mixed[order[start : start + k]] = c[order[start : start + k]]
        best = max(best, auroc(mixed, labels))
    return best


def fit_times() -> list[dict]:
    """Seconds to fit a budget-0.5 detector (5-fold cross-fitting + window search) and to search the band alone."""
    rows = []
    for n in (1000, 2000, 10_000):
        rng = np.random.default_rng(n)
        labels = (rng.random(n) < 0.3).astype(int)
        x_self = rng.normal(size=(n, len(SELF_FEATURES))) + 0.8 * labels[:, None] * [1, 1, 1, 1, 1, -1]
        x_cross = rng.normal(size=(n, len(CROSS_FEATURES))) + 2.0 * labels[:, None] * [-1, -1, 1]
        fit_s, _ = median_time(partial(TwoStageDetector(budget=0.5).fit, x_self, x_cross, labels))
        s, c = rng.random(n), rng.random(n)
        order = np.argsort(s)
        search_s, _ = median_time(partial(window_aurocs, s, c, labels, order, n // 2))
        row = {"method": "band fit time", "n": n, "detector_fit_seconds": fit_s, "band_search_seconds": search_s}
        if n <= 2000:
            row["rescore_every_window_seconds"] = median_time(
                partial(brute_force_band, s, c, labels, order, n // 2), 1
            )[0]
        rows.append(row)
        print(row)
    return rows


def main() -> None:
    args = arguments(__doc__.splitlines()[0], seeds=3).parse_args()
    seeds = prepare(args)
    start = time.perf_counter()
    rows = fit_times()
    for scenario, overrides in SCENARIOS.items():
        runs = [row for seed in seeds for row in one_run(overrides, seed)]
        rows += summarise(scenario, overrides, runs)
        summary = rows[-1]
        print(
            f"{scenario}: 97% of full cross AUROC from budget {summary['smallest_budget_reaching_97pct_of_full_cross_auroc']}"
        )
        for r in rows[:-1]:
            if r.get("scenario") == scenario and r["method"] in ("two_stage", "semantic_entropy", "cross_consistency"):
                print(
                    f"  {r['method']:18s} budget={r['budget']} AUROC {r['auroc_median']:.4f} ({r['fraction_of_full_cross_auroc_median']:.1%} of full)"
                    f" verifier {r['verifier_fraction_median']:.1%}"
                )
    rows.append(
        {
            "method": "run",
            "wall_seconds": time.perf_counter() - start,
            "peak_rss_mb": peak_rss_mb(),
            "machine": machine(),
        }
    )
    plot(rows, RESULTS / "hallucination.png")
    write_result("hallucination", rows)


if __name__ == "__main__":
    main()
