"""``hfdc.gradmm.generate`` on a tiny random Llama: the rows it returns, a killed run that resumes to the same set,
clear errors on bad input, and (slow) two processes + a Hub push giving the same set with its card."""

import json

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

from hfdc.cli import recipe_to_argv
from hfdc.data import load
from hfdc.gradmm import GradmmConfig, admm, generate
from hfdc.gradmm.vocab import allowed_tokens
from hfdc.models import tiny, tiny_processor
from tests.distributed import TWO_PROCESSES
from tests.hub_fixtures import run_online

SMALL = dict(
    model_name_or_path="tiny:llama",
    dataset="sentiment",
    text_column="text",
    prompt=" It was",
    label_words=[" bad", " great"],
    real_per_class=4,
    synthetic_per_class=3,
    generation_batch_size=2,
    sequence_length=9,
    admm_steps=3,
    admm_inner_steps=2,
    topk=10,
    init_candidates=2,
    evaluate=False,
    filter="none",
)


@pytest.fixture(scope="module")
def data():
    return load("sentiment", n_train=40, n_validation=4, n_test=4)["train"]


def config(tmp_path, **overrides):
    return GradmmConfig(output_dir=str(tmp_path), **{**SMALL, **overrides})


def run(data, tmp_path, **overrides):
    torch.set_num_threads(1)
    return generate(data, tiny("llama", seed=0), tiny_processor("llama"), config(tmp_path, **overrides))


def test_rows_per_class_in_groups_of_the_batch_size_from_allowed_tokens(data, tmp_path):
    synthetic = run(data, tmp_path)
    assert synthetic.column_names == ["text", "label", "matching_loss", "group_matching_loss", "group"]
    assert synthetic["label"] == [0, 0, 0, 1, 1, 1] and synthetic["group"] == [0, 0, 1, 0, 0, 1]
    assert synthetic.features["label"] == data.features["label"]
    tokenizer = tiny_processor("llama")
    allowed = allowed_tokens(tokenizer, 1024)
    for c in (0, 1):
        for g, size in ((0, 2), (1, 1)):  # 3 per class in groups of 2: the last group takes the remainder
            unit = json.loads((tmp_path / "generation" / f"unit-c{c}-g{g}.json").read_text())
            assert len(unit["token_ids"]) == size and len(unit["history"]) == 3
            assert all(len(ids) == 9 - 1 - 2 for ids in unit["token_ids"])  # minus BOS and the 2 prompt tokens
            assert all(allowed[t] for ids in unit["token_ids"] for t in ids)
            assert unit["texts"] == tokenizer.batch_decode(unit["token_ids"])
            rows = [r for r in synthetic if r["label"] == c and r["group"] == g]
            assert [r["text"] for r in rows] == unit["texts"]
            assert [r["matching_loss"] for r in rows] == unit["matching_loss"]
            assert all(r["group_matching_loss"] == unit["group_matching_loss"] for r in rows)
    assert not list((tmp_path / "generation").glob("*.pt"))  # finished units leave no checkpoint


def test_a_killed_run_resumes_to_the_same_synthetic_set(data, tmp_path, monkeypatch):
    decay = dict(lr_step_size=2, lr_gamma=0.5)  # StepLR halves the rate every 2nd iteration: its state matters
    reference = run(data, tmp_path / "uninterrupted", **decay)
    original, calls = admm.outer_step, []

    def killed_after_four(problem, state):
        if len(calls) == 4:
            raise KeyboardInterrupt("killed")
        calls.append(state.step)
        original(problem, state)

    monkeypatch.setattr(admm, "outer_step", killed_after_four)
    with pytest.raises(KeyboardInterrupt):
        run(data, tmp_path / "killed", **decay)
    work = tmp_path / "killed" / "generation"
    # unit (0, 0) finished its 3 steps; unit (0, 1) stopped after 1 and left its state
    assert calls == [0, 1, 2, 0] and (work / "unit-c0-g0.json").exists()
    assert torch.load(work / "unit-c0-g1.pt", weights_only=False)["step"] == 1

    calls.clear()
    monkeypatch.setattr(
        admm, "outer_step", lambda problem, state: calls.append(state.step) or original(problem, state)
    )
    resumed = run(data, tmp_path / "killed", **decay)
    assert calls == [1, 2, 0, 1, 2, 0, 1, 2]  # (0, 1) from step 1, then (1, 0) and (1, 1) from scratch
    assert resumed.to_dict() == reference.to_dict()
    for unit in sorted(work.glob("unit-*.json")):  # the continuous trajectory too, not only the decoded tokens
        expected = json.loads((tmp_path / "uninterrupted" / "generation" / unit.name).read_text())
        assert json.loads(unit.read_text())["history"] == expected["history"], unit.name


def test_a_folder_of_another_run_is_refused(data, tmp_path):
    run(data, tmp_path, admm_steps=1)
    with pytest.raises(ValueError, match="changed: rho"):
        run(data, tmp_path, admm_steps=1, rho=0.1)


def test_bad_input_fails_with_a_message_naming_the_fix(data, tmp_path):
    tokenizer = tiny_processor("llama")
    with pytest.raises(ValueError, match=r"label_words\[1\]='terrible' is 2 tokens"):
        run(data, tmp_path / "a", label_words=[" bad", "terrible"])
    only_negative = data.filter(lambda row: row["label"] == 0)
    with pytest.raises(ValueError, match=r"class 1 \(label word ' great'\) has no rows"):
        run(only_negative, tmp_path / "b")
    short_context = tiny("llama", max_position_embeddings=8)
    with pytest.raises(ValueError, match="longer than the model's context of 8 tokens"):
        generate(data, short_context, tokenizer, config(tmp_path / "c"))
    with pytest.raises(ValueError, match="sequence_length .* longer than the model's context of 512"):
        run(data, tmp_path / "d", sequence_length=600)
    with pytest.raises(ValueError, match="has no LM head"):
        generate(data, tiny("llama").model, tokenizer, config(tmp_path / "e"))
    with pytest.raises(ValueError, match="leaves no free position"):
        run(data, tmp_path / "f", sequence_length=3)
    with pytest.raises(TypeError, match="one split"):
        generate(load("sentiment", n_train=8, n_validation=2, n_test=2), tiny("llama"), tokenizer, config(tmp_path))
    three = Dataset.from_dict(
        {"text": ["a", "b", "c"], "label": [0, 1, 2]},
        features=Features({"text": Value("string"), "label": ClassLabel(names=["x", "y", "z"])}),
    )
    with pytest.raises(ValueError, match="3 classes .* label_words has 2 words"):
        run(three, tmp_path / "g")
    with pytest.raises(ValueError, match="no column"):
        run(data, tmp_path / "h", text_column="sentence")


CHECK = """
import json, sys
from datasets import load_dataset
from huggingface_hub import hf_hub_download
data = load_dataset("user/gradmm-demo", split="train")
readme = open(hf_hub_download("user/gradmm-demo", "README.md", repo_type="dataset")).read()
json.dump({"rows": data.to_dict(), "readme": readme}, open(sys.argv[1], "w"))
"""


@pytest.mark.slow
def test_two_processes_write_the_same_set_and_push_it_with_its_card(hub_server, tmp_path, data):
    flags = recipe_to_argv({**SMALL, "filter": "relabel", "filter_shots": 1, "cpu_threads": 1}, GradmmConfig)
    flags += ["--dataset_params", json.dumps({"n_train": 40, "n_validation": 4, "n_test": 4})]
    flags += ["--output_dir", str(tmp_path / "two"), "--repo_id", "user/gradmm-demo"]
    launch = [*TWO_PROCESSES[1:], "-m", "hfdc", "gradmm"]
    proc = run_online([*launch, *flags], hub_server, tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "process 0 of 2 runs units [(0, 0), (1, 0)]" in proc.stderr
    assert "process 1 of 2 runs units [(0, 1), (1, 1)]" in proc.stderr
    units = sorted(p.name for p in (tmp_path / "two" / "generation").glob("unit-*.json"))
    assert units == ["unit-c0-g0.json", "unit-c0-g1.json", "unit-c1-g0.json", "unit-c1-g1.json"]

    single = run(data, tmp_path / "one")
    check = tmp_path / "check.py"
    check.write_text(CHECK)
    proc = run_online([str(check), str(tmp_path / "got.json")], hub_server, tmp_path / "home2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads((tmp_path / "got.json").read_text())
    assert got["rows"]["text"] == single["text"] and got["rows"]["matching_loss"] == single["matching_loss"]
    assert set(got["rows"]["label"]) <= {0, 1} and len(got["rows"]["label_probability"]) == 6
    readme = got["readme"]
    for figure in (
        "| rho | 0.7 |",
        "| top-k | 10 |",
        "| ADMM steps (outer x inner) | 3 x 2 |",
        "| DP epsilon | off |",
    ):
        assert figure in readme
    assert "final matching loss (mean over groups)" in readme and "| real examples used | 8 |" in readme
