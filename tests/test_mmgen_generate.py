"""MM-Gen generation: robust parsing, format-fix retries and counted skips, cached reruns, no loss on a timeout."""

import io
import json
import re

import huggingface_hub.constants
import pytest
from datasets import Dataset
from PIL import Image

from hfdc import backends
from hfdc.mmgen import GenerationError, ParseError, generate, generation_report, parse_items, shapes_oracle
from hfdc.mmgen.task import CANDIDATE_FEATURES, REFERENCE_FEATURES, TaskSpec, qa_conversation
from tests.openai_server import OpenAIServer

SCENES = [
    "a red circle to the left of a small blue square",
    "a green cross above a small red ring",
    "a blue square below a small yellow diamond",
    "a yellow ring to the right of a small green circle",
]


def png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, shade, shade)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_task(n: int, broken: tuple = ()) -> TaskSpec:
    """n candidates described as "scene-<i> <shapes scene>"; candidate i in ``broken`` has undecodable bytes."""
    reference = Dataset.from_dict(
        {
            "image": [Image.new("RGB", (8, 8))] * 2,
            "conversations": [qa_conversation("where is the red circle? Options: left, right.", "left")] * 2,
            "text": [SCENES[0], SCENES[1]],
        },
        features=REFERENCE_FEATURES,
    )
    candidates = Dataset.from_dict(
        {
            "image": [{"bytes": b"broken" if i in broken else png(i), "path": None} for i in range(n)],
            "text": [f"scene-{i} {SCENES[i % 4]}" for i in range(n)],
        },
        features=CANDIDATE_FEATURES,
    )
    return TaskSpec("Spatial reasoning.", ["all"], reference, candidates, name="t", fingerprint="f")


@pytest.mark.parametrize(
    ("reply", "items", "dropped"),
    [
        ('[{"Q": "q1", "A": "a1"}, {"Q": "q2", "A": "a2"}]', [("q1", "a1"), ("q2", "a2")], 0),
        ('Sure!\n```json\n[{"Q": "q1", "A": "a1"},]\n```\nEnjoy.', [("q1", "a1")], 0),
        ("[{'question': 'q1', 'Answer': 3}]", [("q1", "3")], 0),
        ('{"pairs": [{"Q": "q1", "A": "a1"}, {"Q": "q2"}]}', [("q1", "a1")], 1),
        ('{"Q": "only", "A": {"A": "one"}}', [("only", "one")], 0),
        ('noise {"Q": "q1", "A": "a1"} more {"Q": "q2", "A": "a2"', [("q1", "a1")], 1),
        ('[{"Q": "q1", "A": "a1"} {"Q": "q2", "A": "a2"} {"Q" "q3"}]', [("q1", "a1"), ("q2", "a2")], 1),
        ('[{"Q": "Is it red?", "A": true,},]', [("Is it red?", "True")], 0),
        ("\u201c[{\u201cQ\u201d: \u201cq1\u201d, \u201cA\u201d: \u201ca1\u201d}]", [("q1", "a1")], 0),
    ],
)
def test_parser_accepts_what_chat_models_wrap_around_json(reply, items, dropped):
    parsed = parse_items(reply)
    assert [(item["Q"], item["A"]) for item in parsed.items] == items and parsed.dropped == dropped


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("I cannot see the image.", "no_json"),
        ("[{'Q': 'q1', 'A': 'a1'", "no_json"),
        ('[{"Q": "q1" "A": }]', "invalid_json"),
        ('[{"Q": "q1"}, {"A": ""}]', "no_items"),
        ('"just a string"]', "no_json"),
    ],
)
def test_parser_names_why_a_reply_is_unusable(reply, reason):
    with pytest.raises(ParseError) as error:
        parse_items(reply)
    assert error.value.reason == reason


def scripted_replies(messages, seed):
    """Per candidate: 0, 1 good / wrapped; 2 truncated (one fix); 3 prose, 4 keyless (never fixed); 5 cut off;
    6 fixed by the third format-fix request only."""
    system, text = messages[0]["content"], messages[-1]["content"]
    if system.startswith("You repair"):
        if text.startswith("[{'Q'"):
            return '[{"Q": "fixed", "A": "left"}]'
        if text.startswith("[[partial"):
            step = int(text[len("[[partial") :])
            return '[{"Q": "late", "A": "right"}]' if step == 2 else f"[[partial{step + 1}"
        return text
    scene = int(re.findall(r"scene-(\d+)", text)[-1])
    good = [{"Q": f"q{scene}", "A": "left"}, {"Q": f"r{scene}", "A": "right"}]
    return [
        json.dumps(good),
        "Here you go: " + json.dumps(good),
        json.dumps(good[:1]).replace('"', "'")[:-2],
        "I am not able to do that.",
        json.dumps([{"question": "no answer"}]),
        json.dumps(good)[:-10],
        "[[partial0",
    ][scene % 7]


def test_malformed_replies_are_fixed_or_skipped_and_counted(tmp_path):
    backend = backends.get("scripted", responses=scripted_replies)
    records = generate(
        make_task(8, broken=(7,)),
        backend,
        total=16,
        per_candidate=2,
        num_icl=1,
        include_images=False,
        shard_size=4,
        output_dir=tmp_path,
    )
    report = generation_report(records)
    # prompt 2 needs one fix, prompt 6 three; prompts 3 and 4 get three fix requests each, then are skipped;
    # 5 keeps its first pair (the cut-off second one is counted as dropped); 7 does not decode
    assert report.fix_requests == 1 + 3 + 3 + 3 and report.fixed == 2
    assert report.skipped == {"no_json": 1, "no_items": 1, "undecodable_image": 1}
    assert report.prompts == 7 and report.records == len(records) == 2 + 2 + 1 + 1 + 1
    assert report.backend_calls == 7 + 10 and report.dropped_items == 1
    by_prompt = {}
    for row in records:
        by_prompt.setdefault(row["candidate_index"], []).append(
            (row["conversations"][0]["value"], row["fix_attempts"])
        )
    assert by_prompt[2] == [("<image>\nfixed", 1)] and by_prompt[0] == [("<image>\nq0", 0), ("<image>\nr0", 0)]
    assert by_prompt[5] == [("<image>\nq5", 0)] and by_prompt[6] == [("<image>\nlate", 3)]
    assert sorted(by_prompt) == [0, 1, 2, 5, 6]


def test_a_generator_that_never_parses_yields_an_empty_set_and_counts(tmp_path):
    backend = backends.get("scripted", responses=lambda messages, seed: "no idea")
    records = generate(make_task(3), backend, total=3, include_images=False, shard_size=2, output_dir=tmp_path)
    report = generation_report(records)
    assert len(records) == 0 and report.skipped == {"no_json": 3} and report.fix_requests == 9


def test_rerun_with_the_cache_makes_zero_backend_calls(tmp_path):
    task = make_task(8)
    oracle = shapes_oracle(malformed=0.5, wrong=0.2)
    kwargs = dict(total=16, per_candidate=2, include_images=False, shard_size=3, output_dir=tmp_path / "out", seed=1)
    first_backend = backends.get("scripted", responses=oracle, cache_dir=tmp_path / "cache")
    first = generate(task, first_backend, **kwargs)
    assert first_backend.usage.calls > 8  # 8 prompts plus format fixes
    shards = backends.get("scripted", responses=oracle, cache_dir=tmp_path / "cache")
    again = generate(task, shards, **kwargs)  # finished shards are read, nothing is asked
    assert shards.usage.calls == 0 and shards.usage.cache_hits == 0
    cached = backends.get("scripted", responses=oracle, cache_dir=tmp_path / "cache")
    rebuilt = generate(task, cached, **{**kwargs, "output_dir": tmp_path / "fresh"})  # shards gone: the cache answers
    assert cached.usage.calls == 0 and cached.usage.cache_hits == first_backend.usage.calls
    for other in (again, rebuilt):
        assert other.remove_columns("image").to_dict() == first.remove_columns("image").to_dict()
    assert generation_report(rebuilt).backend_calls == 0 and generation_report(again).backend_calls > 8


def test_caption_baselines_record_descriptions(tmp_path):
    backend = backends.get("scripted", responses=shapes_oracle(malformed=0.0))
    common = dict(total=4, include_images=False, output_dir=tmp_path)
    generic = generate(make_task(4), backend, mode="generic_caption", **common)
    assert generic[0]["conversations"][0]["value"] == "<image>\nDescribe the image."
    assert generic[0]["conversations"][1]["value"] in SCENES  # the first of its two phrasings
    task_caption = generate(make_task(4), backend, mode="task_caption", **common)
    assert task_caption[0]["conversations"][0]["value"].startswith("<image>\nDescribe the image as an expert in")
    assert len(generic) == len(task_caption) == 4 and set(generic["mode"]) == {"generic_caption"}


@pytest.fixture
def oracle_server(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with OpenAIServer(respond=shapes_oracle(malformed=0.0)) as server:
        yield server


def test_a_generator_timeout_mid_run_loses_nothing(oracle_server, tmp_path):
    task = make_task(10)
    kwargs = dict(total=10, per_candidate=1, include_images=False, shard_size=4, output_dir=tmp_path / "out")

    def backend():
        return backends.get(
            oracle_server.spec("teacher"), cache_dir=tmp_path / "cache", timeout=8.0, max_retries=0, max_workers=1
        )

    oracle_server.stall_next(1, seconds=60, after=5)  # the 2nd prompt of the 2nd shard times out
    with pytest.raises(GenerationError, match=r"stopped in shard 2 of 3 .*the 1 finished shards are saved"):
        generate(task, backend(), **kwargs)
    # 6, or up to 8 (the end of shard 2) when the worker took the next queued requests before the main thread
    # saw the failure and cancelled them (a loaded machine: seen 8)
    sent = len(oracle_server.requests)
    assert 6 <= sent <= 8
    assert [p.name for p in sorted((tmp_path / "out").glob("*/shard-*"))] == ["shard-00000"]
    resumed = generate(task, backend(), **kwargs)
    # every answered request was kept (shard 1 on disk, the rest in the cache): only the others are sent again
    assert len(oracle_server.requests) - sent == 10 - (sent - 1)
    assert sorted(resumed["prompt_id"]) == list(range(10)) and generation_report(resumed).records == 10
