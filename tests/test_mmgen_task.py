"""MM-Gen task files: validation errors name the field; data set sources and inline LLaVA records load."""

import json

import pytest
import yaml
from datasets import Dataset
from PIL import Image

from hfdc.mmgen import TaskFileError, TaskSpec
from hfdc.mmgen.task import conversation_pairs, decode_image

SHAPES = {"n_train": 6, "n_validation": 4, "n_test": 4, "seed": 0}


def shapes_task(**changes) -> dict:
    task = {
        "name": "t",
        "skill": "Spatial reasoning.",
        "keywords": ["circle", "square"],
        "reference": {
            "dataset": "shapes",
            "params": SHAPES,
            "split": "validation",
            "question_column": "question",
            "answer_column": "answer",
            "options": ["left", "right", "above", "below"],
            "text_column": "caption",
        },
        "candidates": {"dataset": "shapes", "params": SHAPES, "split": "train", "text_column": "caption", "limit": 5},
        "evaluation": {
            "dataset": "shapes",
            "params": SHAPES,
            "split": "test",
            "question_column": "question",
            "answer_column": "answer",
            "options": ["left", "right", "above", "below"],
        },
    }
    task.update(changes)
    return task


def write(tmp_path, mapping, name="task.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(mapping) if name.endswith(".yaml") else json.dumps(mapping))
    return path


def test_data_set_sources_become_llava_reference_candidates_and_evaluation(tmp_path):
    task = TaskSpec.from_file(write(tmp_path, shapes_task(), "task.json"))
    assert (len(task.reference), len(task.candidates), len(task.evaluation)) == (4, 5, 4)
    first = task.reference[0]
    question, answer = conversation_pairs(first["conversations"])[0]
    assert first["conversations"][0]["value"].startswith("<image>\n")
    assert question.endswith("Options: left, right, above, below.") and answer in ("left", "right", "above", "below")
    assert first["text"].startswith("a ") and isinstance(first["image"], Image.Image)
    assert decode_image(task.candidates[4]["image"]).size == (32, 32)  # candidates stay undecoded until used
    assert task.evaluation[0]["options"] == ["left", "right", "above", "below"]
    assert task.sources == ("shapes",) and task.has_text
    assert TaskSpec.from_file(write(tmp_path, shapes_task(), "again.json")).fingerprint == task.fingerprint
    assert TaskSpec.from_dict(shapes_task(skill="Other.")).fingerprint != task.fingerprint


@pytest.mark.parametrize("field", ["skill", "keywords", "reference", "candidates"])
def test_missing_field_is_named(tmp_path, field):
    mapping = shapes_task()
    del mapping[field]
    with pytest.raises(TaskFileError, match=f"missing field '{field}'"):
        TaskSpec.from_file(write(tmp_path, mapping))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"keyword": ["a"]}, r"unknown field 'keyword' in the task \(did you mean 'keywords'\?\)"),
        ({"keywords": ["a", "a"]}, "repeats a keyword"),
        ({"keywords": "circle"}, "must be a list of non-empty strings"),
        ({"candidates": {"params": SHAPES}}, r"missing field 'candidates.dataset'"),
        ({"candidates": {"dataset": "shapes", "params": SHAPES}}, r"'candidates.split' must name one of the splits"),
        (
            {"candidates": {"dataset": "shapes", "params": SHAPES, "split": "train", "text_column": "scene"}},
            r"'candidates.text_column' = 'scene' is not a column",
        ),
        (
            {"reference": {"dataset": "shapes", "params": SHAPES, "split": "train", "question_column": "question"}},
            "needs conversations_column, or question_column and answer_column",
        ),
        ({"candidates": {"dataset": "shapes", "params": {"n_trains": 3}, "split": "train"}}, "no parameter"),
    ],
)
def test_bad_fields_get_errors_naming_them(changes, message):
    with pytest.raises(TaskFileError, match=message):
        TaskSpec.from_dict(shapes_task(**changes))


def test_inline_llava_reference_and_a_broken_image(tmp_path):
    Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp_path / "ref.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    turns = [{"from": "human", "value": "<image>\nWhat colour?"}, {"from": "gpt", "value": "red"}]
    mapping = shapes_task(reference=[{"image": "ref.png", "conversations": turns}])
    task = TaskSpec.from_file(write(tmp_path, mapping))
    assert conversation_pairs(task.reference[0]["conversations"]) == [("What colour?", "red")]
    assert task.reference[0]["image"].getpixel((3, 3)) == (200, 10, 10)
    assert not task.has_text  # the inline example has no description
    mapping["reference"].append({"image": "broken.png", "conversations": turns})
    with pytest.raises(TaskFileError, match=r"'reference\[1\].image' = .*broken.png' cannot be decoded"):
        TaskSpec.from_file(write(tmp_path, mapping))
    mapping["reference"][1] = {"image": "ref.png", "conversations": turns[::-1]}
    with pytest.raises(TaskFileError, match=r"'reference\[1\].conversations\[0\]' must be \{from: human"):
        TaskSpec.from_file(write(tmp_path, mapping))


def test_contains_offset_and_limit_select_rows_and_list_answers_give_their_first(tmp_path):
    rows = {"image": [Image.new("RGB", (4, 4))] * 5, "id": ["map.1", "maze.1", "map.2", "map.3", "map.4"]}
    rows["q"], rows["label"] = [f"q{i}" for i in range(5)], [[f"a{i}", "alt"] for i in range(5)]
    Dataset.from_dict(rows).save_to_disk(str(tmp_path / "table"))
    source = {"dataset": "table", "question_column": "q", "answer_column": "label", "contains": {"id": "map"}}
    task = TaskSpec.from_file(write(tmp_path, shapes_task(evaluation={**source, "offset": 1, "limit": 2})))
    assert list(task.evaluation["question"]) == ["q2", "q3"] and list(task.evaluation["answer"]) == ["a2", "a3"]


def test_decode_image_returns_none_for_broken_bytes():
    assert decode_image({"bytes": b"\x89PNG broken", "path": None}) is None
    assert decode_image({"bytes": None, "path": "/nonexistent.png"}) is None
