"""``hfdc hallucination``: sample, score, sweep the verifier budget, plot, and save/push the fitted detector."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from hfdc.hallucination.config import HallucinationConfig
from hfdc.hallucination.data import load_split
from hfdc.hallucination.detector import TwoStageDetector
from hfdc.hallucination.evaluate import budget_sweep, featurize, plot_budget_curve, single_score_rows
from hfdc.hallucination.features import SELF_FEATURES
from hfdc.hallucination.sampling import sample_target, sample_verifier
from hfdc.hallucination.similarity import get_similarity
from hfdc.hallucination.simulate import SimulatedBackend, SimulatedWorld, SimulationParams

logger = logging.getLogger(__name__)
PAPER = "Verify when Uncertain: Beyond Self-Consistency in Black Box Hallucination Detection"


def simulation_params(config: HallucinationConfig) -> SimulationParams:
    """The SimulationParams named by the config's simulation fields."""
    return SimulationParams(**{f.name: getattr(config, f.name) for f in dataclasses.fields(SimulationParams)})


def load_questions(config: HallucinationConfig):
    """(target, verifier, {split: (questions, golds)}) for the simulated benchmark or a labelled QA data set."""
    simulated = config.dataset == "simulated"
    for role in ("target", "verifier"):
        if (getattr(config, role) == "simulated") != simulated:
            raise ValueError(
                f"{role}={getattr(config, role)!r} with dataset={config.dataset!r}: simulated backends answer only the "
                "simulated benchmark, and it can only be answered by them; set both or neither to 'simulated'"
            )
    if simulated:
        world = SimulatedWorld(config.n_validation + config.n_test, simulation_params(config), seed=config.seed)
        ids = {"validation": range(config.n_validation), "test": range(config.n_validation, len(world))}
        splits = {
            name: ([world.question(i) for i in r], [world.gold_answers(i) for i in r]) for name, r in ids.items()
        }
        return SimulatedBackend(world, "target"), SimulatedBackend(world, "verifier"), splits
    from hfdc import backends

    kwargs = {"cache_dir": config.cache_dir} if config.cache_dir else {}
    splits = {
        name: load_split(
            config.dataset,
            split,
            config.question_column,
            config.answers_column,
            config.dataset_config,
            config.max_questions,
            config.seed,
        )
        for name, split in (("validation", config.validation_split), ("test", config.test_split))
    }
    return backends.get(config.target, **kwargs), backends.get(config.verifier, **kwargs), splits


def base_model(spec: str) -> str | None:
    """The Hub model id behind an ``openai:<model>@<url>`` spec (for the card), else None."""
    return spec.removeprefix("openai:").partition("@")[0] if spec.startswith("openai:") else None


def run(config: HallucinationConfig) -> dict:
    """Sample target and verifier answers for both splits, compute features, evaluate, plot, save the detector."""
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    target, verifier, splits = load_questions(config)
    similarity = get_similarity(config.similarity, config.nli_model)
    sampling = dict(
        temperature=config.temperature,
        max_new_tokens=config.max_new_tokens,
        seed=config.seed,
        prompt_template=config.prompt_template,
        batch_size=config.batch_size,
    )
    features = {}
    with (output_dir / "samples.jsonl").open("w") as f:
        for name, (questions, golds) in splits.items():
            logger.info("%s: sampling %d questions", name, len(questions))
            answers = sample_target(
                target, questions, config.n_samples, answer_temperature=config.answer_temperature, **sampling
            )
            verifier_samples = sample_verifier(verifier, questions, config.n_verifier_samples, **sampling)
            for a, v, q, g in zip(answers, verifier_samples, questions, golds):
                a.verifier_samples = v
                f.write(json.dumps({"split": name, "question": q, "gold": g, **dataclasses.asdict(a)}) + "\n")
            features[name] = featurize(answers, golds, similarity)
    validation, test = features["validation"], features["test"]
    single = single_score_rows(test)
    sweep = budget_sweep(validation, test, config.budgets, config.n_verifier_samples, config.seed)
    plot = plot_budget_curve(
        sweep, single, output_dir / "budget_auroc.png", title=f"{config.dataset}: budget vs AUROC"
    )
    detector = TwoStageDetector(budget=config.budget, seed=config.seed)
    detector.fit(validation.x_self, validation.x_cross, validation.labels)
    test_detection = detector.predict(test.x_self, test.x_cross)
    figures = {
        "budget": config.budget,
        "test verifier fraction": round(float(test_detection.called_verifier.mean()), 4),
        **{f"validation {k}": round(v, 4) if isinstance(v, float) else v for k, v in detector.validation.items()},
    }
    from hfdc.hub import push_model

    detector_dir = push_model(
        detector,
        repo_id=config.repo_id,
        output_dir=output_dir / "detector",
        card={
            "method": "hallucination",
            "paper": PAPER,
            "arxiv": "2502.15845",
            "license": "apache-2.0",
            "tags": ["hallucination-detection", "two-stage", "self-consistency"],
            "base_model": base_model(config.target),
            "datasets": None if config.dataset == "simulated" else [config.dataset],
            "description": (
                f"Two-stage hallucination detector: a logistic combiner over the self-consistency features "
                f"{list(SELF_FEATURES)} scores every question; questions whose score falls in [tau_low, tau_high] = "
                f"{detector.thresholds} call the verifier and are rescored with self + cross-consistency features."
            ),
            "config": config,
            "figures": figures,
        },
    )
    usage = {"target": dataclasses.asdict(target.usage), "verifier": dataclasses.asdict(verifier.usage)}
    report = {
        "single_scores": single,
        "budget_sweep": sweep,
        "usage": usage,
        "detector": str(detector_dir),
        "plot": str(plot),
    }
    (output_dir / "results.json").write_text(json.dumps(report, indent=2))
    for row in single + sweep:
        extra = f" budget={row['budget']:.2f} verifier={row['verifier_fraction']:.1%}" if "budget" in row else ""
        logger.info("%-24s AUROC %.4f AURAC %.4f%s", row["method"], row["auroc"], row["aurac"], extra)
    logger.info("wrote %s, %s and the detector to %s", output_dir / "results.json", plot, detector_dir)
    return report
