"""MM-Gen targeted prompts: the proportional count formula, same-subgroup examples, candidate rounds, messages."""

import math
from collections import Counter

import pytest
from datasets import Dataset
from PIL import Image

from hfdc.mmgen import plan_prompts, prompt_counts, prompt_messages
from hfdc.mmgen.prompts import fix_messages


def test_prompt_counts_follow_the_proportional_formula():
    # n_g = ceil(total * |ref_g| / |ref| / m): 100 * 7/12 / 3 = 19.44 -> 20, 100 * 4/12 / 3 = 11.1 -> 12,
    # 100 * 1/12 / 3 = 2.78 -> 3, 0 -> 0
    assert prompt_counts({"bar": 7, "pie": 4, "line": 1, "map": 0}, total=100, per_candidate=3) == {
        "bar": 20,
        "pie": 12,
        "line": 3,
        "map": 0,
    }
    counts = {"a": 5, "b": 3, "c": 2}  # exact multiples stay exact: 30 * 5/10 / 1 = 15
    assert prompt_counts(counts, 30, 1) == {"a": 15, "b": 9, "c": 6}
    for total, m in [(7, 2), (50, 4), (1, 1)]:
        assert prompt_counts(counts, total, m) == {g: math.ceil(total * n / 10 / m) for g, n in counts.items()}
    with pytest.raises(ValueError, match="no reference examples"):
        prompt_counts({"a": 0}, 10, 1)


def tables(ref_groups, cand_groups):
    reference = Dataset.from_dict({"subgroup": ref_groups})
    candidates = Dataset.from_dict({"subgroup": cand_groups})
    return reference, candidates


def test_plan_uses_same_subgroup_examples_and_every_candidate_before_reuse():
    ref_groups = ["bar"] * 6 + ["pie"] * 3 + ["line"]
    cand_groups = ["pie", "bar", "bar", None, "pie", "bar", "bar", "pie"]
    reference, candidates = tables(ref_groups, cand_groups)
    plan = plan_prompts(reference, candidates, ["bar", "pie", "line"], total=20, per_candidate=2, num_icl=2, seed=3)
    # ceil(20 * 6/10 / 2) = 6, ceil(20 * 3/10 / 2) = 3, ceil(20 * 1/10 / 2) = 1
    assert plan.planned == {"bar": 6, "pie": 3, "line": 1}
    assert Counter(plan.prompts["subgroup"]) == {"bar": 6, "pie": 3}
    assert plan.skipped == {"undecodable_image": 1, "no_candidates": 1}  # no "line" candidate; one broken image
    bars = [c for c, g in zip(plan.prompts["candidate_index"], plan.prompts["subgroup"]) if g == "bar"]
    assert sorted(bars[:4]) == [1, 2, 5, 6] and set(bars[4:]) <= {1, 2, 5, 6}  # a full round before any reuse
    for row in plan.prompts:
        assert cand_groups[row["candidate_index"]] == row["subgroup"]
        assert len(set(row["example_indices"])) == 2
        assert all(ref_groups[i] == row["subgroup"] for i in row["example_indices"])
    again = plan_prompts(reference, candidates, ["bar", "pie", "line"], 20, 2, 2, seed=3)
    assert again.prompts.to_dict() == plan.prompts.to_dict()
    other = plan_prompts(reference, candidates, ["bar", "pie", "line"], 20, 2, 2, seed=4)
    assert other.prompts.to_dict() != plan.prompts.to_dict()


def test_unpartitioned_data_is_one_subgroup():
    reference, candidates = Dataset.from_dict({"x": [0, 1, 2]}), Dataset.from_dict({"x": [0, 1]})
    plan = plan_prompts(reference, candidates, ["ignored"], total=5, per_candidate=1, num_icl=5)
    assert plan.planned == {"all": 5} and len(plan.prompts) == 5
    assert all(len(row) == 3 for row in plan.prompts["example_indices"])  # num_icl capped at the 3 examples


def test_messages_show_examples_images_and_descriptions():
    image, example_image = Image.new("RGB", (8, 8)), Image.new("RGB", (8, 8), (9, 9, 9))
    turns = [{"from": "human", "value": "<image>\nWhere? Options: left, right."}, {"from": "gpt", "value": "left"}]
    messages = prompt_messages(
        "mmgen", "Spatial reasoning.", (image, "a red circle"), [(example_image, turns, "ex")], 3
    )
    system, user = messages
    assert system["role"] == "system" and system["content"].startswith("You are an expert in Spatial reasoning.")
    parts = user["content"]
    assert [p["type"] for p in parts] == ["text", "image", "text", "text", "text", "image", "text", "text"]
    assert parts[1]["image"] is example_image and parts[5]["image"] is image
    assert parts[3]["text"] == '[{"Q": "Where? Options: left, right.", "A": "left"}]'
    assert "exactly 3" in parts[-1]["text"]
    text_only = prompt_messages("task_qa", "S.", (image, "a red circle"), [(example_image, turns, "ex")], 1, False)
    assert isinstance(text_only[1]["content"], str) and "Example" not in text_only[1]["content"]
    assert "Image description: a red circle" in text_only[1]["content"]
    caption = prompt_messages("generic_caption", "S.", (image, ""), [], 2)
    assert "expert" not in caption[0]["content"] and '"A"' in caption[0]["content"]
    with pytest.raises(ValueError, match="set candidates.text_column"):
        prompt_messages("mmgen", "S.", (image, ""), [], 1, include_images=False)
    assert fix_messages("{broken", "task_caption")[0]["content"].count('"Q"') == 0
