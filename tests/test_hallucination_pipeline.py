"""Sampling through hfdc.backends (partial results on failure), labelled QA data, the simulated benchmark and the CLI."""

import json

import datasets
import numpy as np
import pytest

from hfdc import backends
from hfdc.cli import run_command
from hfdc.hallucination import (
    SamplingError,
    TwoStageDetector,
    compute_features,
    deploy,
    sample_answers,
    sample_target,
    sample_verifier,
)
from hfdc.hallucination.data import gold_list, hallucination_labels, load_split
from hfdc.hallucination.evaluate import SINGLE_SCORES, featurize
from hfdc.hallucination.sampling import DEFAULT_PROMPT
from hfdc.hallucination.similarity import normalized_match
from hfdc.hallucination.simulate import SimulatedBackend, SimulatedWorld, SimulationParams
from tests.openai_server import expected_answer

QUESTIONS = [
    "Is the sky blue or green?",
    "Which is a fruit, apple or stone?",
    "Name a planet: Mars or Paris?",
    "Capital of Italy?",
]
GOLDS = [["blue"], ["apple"], ["Mars"], ["Rome"]]  # the test server echoes the prompt: the first three are "correct"


def test_sample_target_and_verifier_with_the_scripted_backend():
    backend = backends.get("scripted", responses=lambda messages, seed: f"answer {seed % 3}")
    answers = sample_target(backend, QUESTIONS[:2], n_samples=3, seed=0, batch_size=1)
    assert [len(a.samples) for a in answers] == [3, 3]
    assert all(a.answer.startswith("answer ") for a in answers)
    assert backend.usage.calls == 2 * (1 + 3)
    verifier = sample_verifier(backend, QUESTIONS[:2], n_samples=2)
    assert [len(v) for v in verifier] == [2, 2] and backend.usage.calls == 2 * (1 + 3) + 2 * 2


def test_backend_error_mid_run_keeps_partial_results():
    def respond(messages, seed):
        if "Mars" in messages[-1]["content"]:
            raise ConnectionError("endpoint went away")
        return "blue"

    backend = backends.get("scripted", responses=respond)
    with pytest.raises(SamplingError, match="question 2 of 4.*ConnectionError.*2 questions finished") as info:
        sample_target(backend, QUESTIONS, n_samples=2, batch_size=2)
    assert [a.answer for a in info.value.partial] == ["blue", "blue"]
    with pytest.raises(ValueError, match="n_samples=0"):
        sample_target(backend, QUESTIONS, n_samples=0)
    with pytest.raises(ValueError, match=r"\{question\}"):
        sample_target(backend, QUESTIONS, prompt_template="no placeholder")


def test_openai_backend_samples_are_cached_and_resume_after_a_failure(openai_server, tmp_path):
    backend = backends.get(openai_server.spec("target-model"), cache_dir=tmp_path, max_retries=0, progress=False)
    openai_server.fail_next(1, status=500)
    with pytest.raises(SamplingError, match="HTTP 500"):
        sample_target(backend, QUESTIONS[:2], n_samples=2, batch_size=2, prompt_template="{question}")
    answers = sample_target(backend, QUESTIONS[:2], n_samples=2, batch_size=2, prompt_template="{question}")
    messages = [{"role": "user", "content": QUESTIONS[0]}]
    seed = backends.sample_seed(0, 0, 0)
    assert answers[0].answer == expected_answer(messages, "target-model", 0.0, seed, 32)
    assert backend.usage.cache_hits > 0  # the samples that arrived before the failure were not asked again


def test_gold_answer_layouts_and_labels(tmp_path):
    assert gold_list({"text": ["Paris", "paris"], "answer_start": [0, 3]}, "answers") == ["Paris", "paris"]
    assert gold_list({"value": "Rome", "aliases": ["Roma"]}, "answer") == ["Rome", "Roma"]
    assert gold_list("Mars", "answer") == ["Mars"]
    with pytest.raises(ValueError, match="without any non-empty gold"):
        gold_list([""], "answers")
    answers = ["Not Paris, it is Lyon", "The Eiffel-Tower.", "Roma", "Romeo", "It is the Eiffel Tower."]
    golds = [["Paris"], ["eiffel tower", "la tour eiffel"], ["Rome", "Roma"], ["Rome"], ["Eiffel Tower"]]
    # default: normalised exact match against every alias
    assert hallucination_labels(answers, golds) == [1, 1, 0, 1, 1]
    assert hallucination_labels(["Eiffel Tower!"], [["eiffel tower"]]) == [0]
    # containment (named option): a gold alias as whole words anywhere in the answer, so "Not Paris" is "Paris"
    assert hallucination_labels(answers, golds, "containment") == [0, 1, 0, 1, 0]
    with pytest.raises(ValueError, match="label method 'fuzzy'"):
        hallucination_labels(answers, golds, "fuzzy")
    # an LLM judge through a backend: the reply "yes" means correct
    seen = []

    def judge_reply(messages, seed):
        seen.append(messages[-1]["content"])
        return "Yes." if "Proposed answer: Roma" in messages[-1]["content"] else "no"

    judge = backends.get("scripted", responses=judge_reply)
    assert hallucination_labels(answers[:3], golds[:3], "judge", ["q1", "q2", "q3"], judge) == [1, 1, 0]
    assert "Question: q3\nReference answer(s): Rome; Roma\nProposed answer: Roma" in seen[2]
    with pytest.raises(ValueError, match="needs questions and a judge backend"):
        hallucination_labels(answers, golds, "judge")
    data = datasets.DatasetDict({"validation": datasets.Dataset.from_dict({"question": QUESTIONS, "answers": GOLDS})})
    data.save_to_disk(str(tmp_path / "qa"))
    questions, golds = load_split(str(tmp_path / "qa"), "validation", max_questions=2, seed=0)
    assert (
        len(questions) == 2
        and all(q in QUESTIONS for q in questions)
        and golds[0] == GOLDS[QUESTIONS.index(questions[0])]
    )
    with pytest.raises(ValueError, match="column 'query' not in.*set question_column"):
        load_split(str(tmp_path / "qa"), "validation", question_column="query")
    with pytest.raises(ValueError, match="split 'test' not in"):
        load_split(str(tmp_path / "qa"), "test")


def test_simulated_world_follows_its_parameters():
    world = SimulatedWorld(400, SimulationParams(verifier_mode="copy"), seed=1)
    target = SimulatedBackend(world, "target")
    greedy = target.generate([world.question(i) for i in range(400)], n=1, temperature=0.0)
    correct = np.array(
        [
            g[0].lower().strip(".!").removeprefix("the ") == world.gold_answers(i)[0].lower()
            for i, g in enumerate(greedy)
        ]
    )
    # the greedy answer is right exactly when the correct answer has the largest target probability
    np.testing.assert_array_equal(correct, world.target_probs.argmax(1) == 0)
    assert np.array_equal(world.verifier_probs, world.target_probs)
    samples = target.generate([world.question(0)], n=400, temperature=1.0)[0]
    share = np.mean([s.lower().strip(".!").removeprefix("the ") == world.gold_answers(0)[0].lower() for s in samples])
    assert abs(share - world.target_probs[0, 0]) < 0.08
    with pytest.raises(ValueError, match="no simulated question id"):
        target.generate(["What is 2 + 2?"])
    with pytest.raises(ValueError, match="verifier_mode='oracle'"):
        SimulationParams(verifier_mode="oracle")


def test_cli_on_the_simulated_benchmark(tmp_path):
    out = tmp_path / "run"
    report = run_command(
        "hallucination",
        [
            "--config",
            "recipes/hallucination/demo.yaml",
            "--output_dir",
            str(out),
            "--n_validation",
            "150",
            "--n_test",
            "200",
            "--budgets",
            "0.0",
            "0.5",
            "1.0",
            "--n_samples",
            "5",
            "--n_verifier_samples",
            "5",
        ],
    )
    saved = json.loads((out / "results.json").read_text())
    sweep = {row["budget"]: row for row in saved["budget_sweep"]}
    assert [sweep[b]["verifier_fraction"] for b in (0.0, 1.0)] == [0.0, 1.0]
    assert sweep[0.5]["validation_verifier_fraction"] == 0.5 and 0.3 < sweep[0.5]["verifier_fraction"] < 0.7
    assert sweep[0.5]["verifier_samples"] == sweep[0.5]["verifier_questions"] * 5
    assert sweep[1.0]["auroc"] > sweep[0.0]["auroc"]  # the default (peer) verifier is informative
    assert saved["usage"]["verifier"]["calls"] == 350 * 5 and saved["usage"]["target"]["calls"] == 350 * 6
    assert (out / "budget_auroc.png").stat().st_size > 10_000
    # every single score is stored oriented (higher = hallucination): on this informative data each beats chance,
    # so a score read the wrong way round would show up as AUROC < 0.5
    assert [r["method"] for r in saved["single_scores"]] == list(SINGLE_SCORES)
    for row in saved["single_scores"]:
        assert row["auroc"] > 0.6, row
    assert saved["label_method"] == "exact_match"
    detector = TwoStageDetector.from_pretrained(str(out / "detector"))
    assert detector.budget == 0.5 and report["detector"] == str(out / "detector")
    with pytest.raises(ValueError, match="simulated backends answer only the simulated benchmark"):
        run_command("hallucination", ["--output_dir", str(out), "--target", "scripted"])


def test_cli_on_a_labelled_qa_folder_with_openai_compatible_endpoints(openai_server, tmp_path):
    questions, golds = [*QUESTIONS, "Capital of Spain?"], [*GOLDS, ["Madrid"]]  # 3 right, 2 wrong (containment)
    splits = {
        name: datasets.Dataset.from_dict({"question": questions, "answers": golds}) for name in ("validation", "test")
    }
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "qa"))
    report = run_command(
        "hallucination",
        [
            "--dataset",
            str(tmp_path / "qa"),
            "--target",
            openai_server.spec("target"),
            "--verifier",
            openai_server.spec("verifier"),
            "--output_dir",
            str(tmp_path / "run"),
            "--cache_dir",
            str(tmp_path / "cache"),
            "--n_samples",
            "2",
            "--n_verifier_samples",
            "2",
            "--budgets",
            "0.0",
            "1.0",
            "--budget",
            "0.5",
            "--label_method",
            "containment",
            "--n_folds",
            "2",
        ],
    )
    assert report["label_method"] == "containment"
    rows = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and all(len(r["samples"]) == 2 and len(r["verifier_samples"]) == 2 for r in rows)
    assert [r["hallucination"] for r in rows[:5]] == [0, 0, 0, 1, 1]
    # both splits hold the same 5 questions: the test split is answered from the cache, at no cost
    assert report["usage"]["target"]["calls"] == 5 * 3 and report["usage"]["target"]["cache_hits"] == 5 * 3
    assert report["usage"]["verifier"]["calls"] == 5 * 2 and report["usage"]["verifier"]["cache_hits"] == 5 * 2
    assert {r["budget"]: r["verifier_questions"] for r in report["budget_sweep"]} == {0.0: 0, 1.0: 5}


def test_recipes_parse_into_the_config():
    from hfdc.cli import parse_config
    from hfdc.hallucination.config import HallucinationConfig

    real = parse_config(HallucinationConfig, ["--config", "recipes/hallucination/triviaqa_openai.yaml"])
    assert real.target.startswith("openai:") and real.answers_column == "answer" and real.similarity == "nli"
    local = parse_config(HallucinationConfig, ["--config", "recipes/hallucination/factual_qa_local.yaml"])
    assert local.dataset == "factual_qa" and local.dataset_params == {"n_validation": 150, "n_test": 150}
    assert local.few_shot == 4 and local.label_method == "exact_match"
    assert real.dataset_params == {"name": "rc.nocontext"}
    demo = parse_config(HallucinationConfig, ["--config", "recipes/hallucination/demo.yaml", "--budget", "0.3"])
    assert demo.dataset == "simulated" and demo.budget == 0.3 and demo.budgets[-1] == 1.0


def test_every_single_score_is_higher_for_disagreement_than_for_agreement():
    questions = ["agree?", "disagree?"]
    answers = sample_answers(
        backends.get("scripted", responses=[["Rome"], ["Rome", "Oslo", "Lima", "Kyiv"]]),
        questions,
        n_samples=4,
        verifier=backends.get("scripted", responses=[["Rome"], ["Bern", "Baku", "Rome", "Doha"]]),
        n_verifier_samples=4,
    )
    split = featurize(questions, answers, [["Rome"], ["Rome"]], normalized_match)
    for name in SINGLE_SCORES:
        agree, disagree = split.oriented(name)
        assert disagree > agree, name


def test_the_config_reuses_simulation_params_and_the_parser_sees_its_fields():
    from transformers import HfArgumentParser

    from hfdc.cli import parse_config
    from hfdc.hallucination.config import HallucinationConfig

    assert issubclass(HallucinationConfig, SimulationParams)
    config = parse_config(HallucinationConfig, ["--verifier_mode", "copy", "--propensity_beta", "2.5"])
    assert config.verifier_mode == "copy" and config.propensity_beta == 2.5
    world = SimulatedWorld(20, config, seed=0)  # the config is the world's parameters
    np.testing.assert_array_equal(world.verifier_probs, world.target_probs)
    help_text = HfArgumentParser(HallucinationConfig).format_help()
    assert "--verifier_concentration" in help_text and "{model,copy,unrelated}" in help_text
    with pytest.raises(SystemExit):
        parse_config(HallucinationConfig, ["--verifier_mode", "oracle"])
    with pytest.raises(ValueError, match="label_method=judge needs judge"):
        HallucinationConfig(label_method="judge")


def test_few_shot_prompts_are_chat_turns_and_answers_keep_their_first_line():
    from hfdc.hallucination.sampling import FEW_SHOT, format_prompts

    prompts = format_prompts(["Capital of Peru?"], "Q: {question}\nA:", FEW_SHOT[:2])
    assert [m["role"] for m in prompts[0]] == ["user", "assistant", "user", "assistant", "user"]
    assert prompts[0][1]["content"] == FEW_SHOT[0][1] and prompts[0][-1]["content"] == "Q: Capital of Peru?\nA:"
    backend = backends.get("scripted", responses=["\n  Lima\nQuestion: next one"])
    assert sample_target(backend, ["Capital of Peru?"], n_samples=1)[0].answer == "Lima"


def _fit_on_simulated(world, ids, budget=0.4, n_verifier=3):
    questions = [world.question(i) for i in ids]
    target, verifier = SimulatedBackend(world, "target"), SimulatedBackend(world, "verifier")
    answers = sample_answers(target, questions, 5, verifier, n_verifier)
    split = featurize(questions, answers, [world.gold_answers(i) for i in ids], normalized_match)
    return TwoStageDetector(budget=budget, n_folds=3).fit(split.x_self, split.x_cross, split.labels, questions)


def test_deploy_samples_the_verifier_only_for_routed_questions_and_counts_its_cost():
    world = SimulatedWorld(260, seed=3)
    detector = _fit_on_simulated(world, range(200))
    questions = [world.question(i) for i in range(200, 260)]
    verifier = SimulatedBackend(world, "verifier")
    asked = []
    original = verifier._generate_one
    verifier._generate_one = lambda job, temperature: (
        asked.append(job.messages[-1]["content"]) or original(job, temperature)
    )
    out = deploy(detector, SimulatedBackend(world, "target"), verifier, questions, 5, 3)
    routed = np.flatnonzero(out.detection.called_verifier)
    assert 0 < len(routed) < len(questions)
    # verifier calls == routed questions x M, and only routed questions reached the verifier
    assert out.verifier_cost.calls == verifier.usage.calls == 3 * len(routed)
    assert set(asked) == {f"{DEFAULT_PROMPT.format(question=questions[i])}" for i in routed}
    assert out.verifier_cost.seconds > 0 and out.target_cost.calls == 60 * 6
    assert [bool(a.verifier_samples) for a in out.answers] == out.detection.called_verifier.tolist()
    # the routed scores are the cross combiner on the features of the samples drawn
    i = routed[0]
    x_self, x_cross = compute_features(
        [out.answers[i].answer], [out.answers[i].samples], [out.answers[i].verifier_samples]
    )
    assert out.detection.scores[i] == pytest.approx(
        detector.cross_combiner.predict_proba(np.hstack([x_self, x_cross]))[0]
    )
    # budget 0: the verifier is never needed, not even given
    nothing = deploy(
        _fit_on_simulated(world, range(200), budget=0.0), SimulatedBackend(world, "target"), None, questions, 5, 3
    )
    assert nothing.detection.verifier_calls == 0 and nothing.verifier_cost.calls == 0


def test_cli_deploys_a_fitted_detector(tmp_path):
    common = ["--config", "recipes/hallucination/demo.yaml", "--n_validation", "120", "--n_test", "80"]
    common += ["--n_samples", "4", "--n_verifier_samples", "3", "--budgets", "0.3", "--budget", "0.3"]
    run_command("hallucination", [*common, "--output_dir", str(tmp_path / "fit")])
    report = run_command(
        "hallucination",
        [*common, "--output_dir", str(tmp_path / "deploy"), "--detector", str(tmp_path / "fit" / "detector")],
    )
    rows = [json.loads(line) for line in (tmp_path / "deploy" / "predictions.jsonl").read_text().splitlines()]
    routed = sum(r["called_verifier"] for r in rows)
    assert len(rows) == 80 and report["routed_questions"] == routed and 0 < routed < 80
    assert report["verifier_cost"]["calls"] == 3 * routed and report["target_cost"]["calls"] == 80 * 5
    assert all(bool(r["verifier_samples"]) == r["called_verifier"] for r in rows)
    assert 0.5 < report["auroc"] <= 1.0 and json.loads((tmp_path / "deploy" / "results.json").read_text()) == report
