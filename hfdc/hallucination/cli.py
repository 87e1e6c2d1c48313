"""``hfdc hallucination``: sample, score, sweep the verifier budget, plot, and save/push the fitted detector; with
``detector`` set, deploy a fitted detector on the test split (the verifier sampled only where it routes)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from hfdc.hallucination.config import HallucinationConfig
from hfdc.hallucination.data import hallucination_labels, load_split
from hfdc.hallucination.deploy import deploy
from hfdc.hallucination.detector import TwoStageDetector
from hfdc.hallucination.evaluate import budget_sweep, featurize, plot_budget_curve, single_score_rows
from hfdc.hallucination.features import SELF_FEATURES
from hfdc.hallucination.metrics import aurac, auroc
from hfdc.hallucination.sampling import FEW_SHOT, sample_answers
from hfdc.hallucination.similarity import get_similarity
from hfdc.hallucination.simulate import SimulatedBackend, SimulatedWorld

logger = logging.getLogger(__name__)
PAPER = "Verify when Uncertain: Beyond Self-Consistency in Black Box Hallucination Detection"


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
        world = SimulatedWorld(config.n_validation + config.n_test, config, seed=config.seed)
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
            config.dataset_params,
            config.max_questions,
            config.seed,
        )
        for name, split in (("validation", config.validation_split), ("test", config.test_split))
    }
    return backends.get(config.target, **kwargs), backends.get(config.verifier, **kwargs), splits


def sampling_kwargs(config: HallucinationConfig) -> dict:
    """The sampling settings of the config, as ``sample_answers`` / ``deploy`` take them."""
    return dict(
        temperature=config.temperature,
        answer_temperature=config.answer_temperature,
        max_new_tokens=config.max_new_tokens,
        seed=config.seed,
        prompt_template=config.prompt_template,
        batch_size=config.batch_size,
        few_shot=FEW_SHOT[: config.few_shot],
    )


def judge_backend(config: HallucinationConfig):
    from hfdc import backends

    return backends.get(config.judge) if config.label_method == "judge" else None


def base_model(spec: str) -> str | None:
    """The Hub model id behind an ``openai:<model>@<url>`` spec (for the card), else None."""
    return spec.removeprefix("openai:").partition("@")[0] if spec.startswith("openai:") else None


def run(config: HallucinationConfig) -> dict:
    """Evaluate (default) or, when ``config.detector`` names a fitted detector, deploy it."""
    return run_deploy(config) if config.detector else run_evaluate(config)


def run_evaluate(config: HallucinationConfig) -> dict:
    """Sample target and verifier answers for both splits, compute features, evaluate, plot, save the detector."""
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    target, verifier, splits = load_questions(config)
    similarity = get_similarity(config.similarity, config.nli_model)
    judge = judge_backend(config)
    features = {}
    with (output_dir / "samples.jsonl").open("w") as f:
        for name, (questions, golds) in splits.items():
            logger.info("%s: sampling %d questions", name, len(questions))
            answers = sample_answers(
                target, questions, config.n_samples, verifier, config.n_verifier_samples, **sampling_kwargs(config)
            )
            features[name] = featurize(questions, answers, golds, similarity, config.label_method, judge)
            for a, q, g, label in zip(answers, questions, golds, features[name].labels):
                row = {"split": name, "question": q, "gold": g, "hallucination": int(label), **dataclasses.asdict(a)}
                f.write(json.dumps(row) + "\n")
    validation, test = features["validation"], features["test"]
    single = single_score_rows(test)
    sweep = budget_sweep(validation, test, config.budgets, config.n_verifier_samples, config.seed, config.n_folds)
    plot = plot_budget_curve(
        sweep, single, output_dir / "budget_auroc.png", title=f"{config.dataset}: budget vs AUROC"
    )
    detector = TwoStageDetector(budget=config.budget, seed=config.seed, n_folds=config.n_folds)
    detector.fit(validation.x_self, validation.x_cross, validation.labels, validation.questions)
    test_detection = detector.predict(test.x_self, test.x_cross, test.questions)
    figures = {
        "budget": config.budget,
        "test verifier fraction": round(float(test_detection.called_verifier.mean()), 4),
        "test AUROC": round(auroc(test_detection.scores, test.labels), 4),
        "label method": config.label_method,
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
                f"Two-stage hallucination detector: a monotone logistic combiner over the self-consistency features "
                f"{list(SELF_FEATURES)} scores every question; questions whose score falls in [tau_low, tau_high] = "
                f"{detector.thresholds} call the verifier and are rescored with self + cross-consistency features. "
                f"Fitted at {config.n_samples + 1} target answers per question."
            ),
            "config": config,
            "figures": figures,
        },
    )
    usage = {"target": dataclasses.asdict(target.usage), "verifier": dataclasses.asdict(verifier.usage)}
    report = {
        "label_method": config.label_method,
        "similarity": config.similarity,
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


def run_deploy(config: HallucinationConfig) -> dict:
    """Deploy ``config.detector`` on the test split: verifier samples only for routed questions; costs counted."""
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    detector = TwoStageDetector.from_pretrained(config.detector)
    target, verifier, splits = load_questions(config)
    questions, golds = splits["test"]
    similarity = get_similarity(config.similarity, config.nli_model)
    out = deploy(
        detector,
        target,
        verifier,
        questions,
        config.n_samples,
        config.n_verifier_samples,
        similarity,
        **sampling_kwargs(config),
    )
    detection = out.detection
    labels = hallucination_labels(
        [a.answer for a in out.answers], golds, config.label_method, questions, judge_backend(config)
    )
    with (output_dir / "predictions.jsonl").open("w") as f:
        for i, (a, q) in enumerate(zip(out.answers, questions)):
            row = {
                "question": q,
                "gold": golds[i],
                "hallucination": labels[i],
                "score": float(detection.scores[i]),
                "self_score": float(detection.self_scores[i]),
                "called_verifier": bool(detection.called_verifier[i]),
                "out_of_range": bool(detection.out_of_range[i]),
                **dataclasses.asdict(a),
            }
            f.write(json.dumps(row) + "\n")
    report = {
        "detector": config.detector,
        "questions": len(questions),
        "routed_questions": detection.verifier_calls,
        "verifier_fraction": detection.verifier_calls / len(questions),
        "out_of_range_questions": int(detection.out_of_range.sum()),
        "target_cost": dataclasses.asdict(out.target_cost),
        "verifier_cost": dataclasses.asdict(out.verifier_cost),
        "label_method": config.label_method,
    }
    if 0 < sum(labels) < len(labels):
        report["auroc"] = auroc(detection.scores, labels)
        report["aurac"] = aurac(detection.scores, labels)
    (output_dir / "results.json").write_text(json.dumps(report, indent=2))
    logger.info(
        "deployed on %d questions: %d routed to the verifier (%d verifier calls, %.1f s)",
        len(questions),
        detection.verifier_calls,
        out.verifier_cost.calls,
        out.verifier_cost.seconds,
    )
    return report
