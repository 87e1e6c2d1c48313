"""MM-Gen filter: the loss band keeps exactly the configured ranks; facility-location de-duplication."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from PIL import Image

import hfdc.models
from hfdc.mmgen import deduplicate, filter_by_loss, loss_band, score_losses
from hfdc.mmgen.task import qa_conversation
from hfdc.mmgen.vlm import collator, completion_nll, sft_row

LOSSES = [0.9, 0.2, 1.7, 0.5, 1.1, 0.3, 2.4, 0.8]


def test_loss_band_keeps_exactly_the_percentile_ranks():
    # ascending: 0.2 (1), 0.3 (5), 0.5 (3), 0.8 (7), 0.9 (0), 1.1 (4), 1.7 (2), 2.4 (6)
    # [25, 75) of 8 -> ranks 2..5; [10, 60) -> ranks round(0.8)=1 .. round(4.8)=5 (exclusive)
    assert loss_band(LOSSES, 25, 75).tolist() == [0, 3, 4, 7]
    assert loss_band(LOSSES, 10, 60).tolist() == [0, 3, 5, 7]
    assert loss_band(LOSSES, 0, 100).tolist() == list(range(8))
    assert loss_band([1.0, 1.0, 1.0, 1.0], 0, 50).tolist() == [0, 1]  # ties: by position
    with pytest.raises(ValueError, match="0 <= low < high <= 100"):
        loss_band(LOSSES, 60, 40)
    with pytest.raises(ValueError, match="NaN"):
        loss_band([0.1, float("nan")], 0, 100)


def records(n: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    answers = ["left", "right", "above", "below", "a small blue square", "the red circle"]
    return Dataset.from_dict(
        {
            "image": [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(n)],
            "conversations": [
                qa_conversation(f"where is shape {i}? Options: left, right.", answers[i % len(answers)])
                for i in range(n)
            ],
            "subgroup": ["a"] * n,
        }
    )


def test_filter_by_loss_keeps_the_band_of_the_base_models_losses(tmp_path):
    model, processor = hfdc.models.tiny("llava", seed=0), hfdc.models.tiny_processor("llava")
    data = records(12)
    rows = [sft_row(r["image"], r["conversations"][0]["value"][8:], r["conversations"][1]["value"]) for r in data]
    nll = completion_nll(model, processor, rows, batch_size=5)
    losses = nll[:, 0] / nll[:, 1]
    for row, loss in zip(rows[:3], losses):  # the mean completion loss is the model's own SFT loss of the row
        with torch.no_grad():
            assert model(**collator(processor)([dict(row)])).loss.item() == pytest.approx(loss, rel=1e-5)
    assert len(set(np.round(losses, 6))) == 12  # unequal losses: the band is not decided by ties
    kept = filter_by_loss(data, model, processor, keep=(25, 75), batch_size=5, cache_dir=tmp_path)
    expected = np.sort(np.argsort(losses)[3:9])
    assert [row["conversations"][0]["value"] for row in kept] == [
        data[int(i)]["conversations"][0]["value"] for i in expected
    ]
    np.testing.assert_allclose(kept["loss"], losses[expected], rtol=1e-5)
    assert len(list(tmp_path.glob("losses-*.arrow"))) == 1
    scored = score_losses(data, model, processor, batch_size=5, cache_dir=tmp_path)  # read from the cache
    np.testing.assert_allclose(scored["loss"], losses, rtol=1e-5)


def test_deduplicate_keeps_one_of_each_near_duplicate_group():
    texts = [
        ("Where is the red circle relative to the blue square?", "left"),
        ("Where is the red circle relative to the blue square?", "left."),
        ("Where's the red circle relative to the blue square?", "left"),
        ("How many sides does a triangle have?", "three"),
        ("What is the capital of France?", "Paris"),
        ("What is the capital city of France?", "Paris"),
    ]
    data = Dataset.from_dict(
        {"conversations": [qa_conversation(q, a) for q, a in texts], "subgroup": ["s"] * 6, "i": list(range(6))}
    )
    kept = deduplicate(data, 0.5)
    assert len(kept) == 3
    groups = [{0, 1, 2}, {3}, {4, 5}]
    assert [len(g & set(kept["i"])) for g in groups] == [1, 1, 1]
    assert list(kept["i"]) == sorted(kept["i"])
    assert len(deduplicate(data, 1.0)) == 6
