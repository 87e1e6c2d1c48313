"""MM-Gen partition: CLIP zero-shot argmax over keyword embeddings, hand-computed on chosen embeddings."""

import io

import numpy as np
import torch
from datasets import Dataset, Features, Image
from PIL import Image as PILImage
from transformers import PretrainedConfig

import hfdc.models
from hfdc.mmgen import partition, partition_task, subgroup_counts
from hfdc.mmgen.task import TaskSpec

KEYWORDS = ["bar", "pie", "line"]
TEMPLATES = ["a {}", "the {} chart"]
# raw text embeddings per (keyword, template): "bar"'s two templates are orthogonal, so their mean is short
TEXT = {
    "a bar": [1.0, 0.0, 0.0],
    "the bar chart": [0.0, 1.0, 0.0],
    "a pie": [0.0, 0.0, 1.0],
    "the pie chart": [0.0, 0.0, 2.0],
    "a line": [1.0, 0.0, 0.2],
    "the line chart": [1.0, 0.0, -0.2],
}
IMAGES = [[0.9, 0.8, 0.1], [1.0, 0.3, 0.0], [1.0, 0.6, 0.0], [0.5, 0.45, 0.7], [0.2, 0.1, 1.0]]
# cos with the unit keyword vectors bar = (1, 1, 0)/sqrt 2, pie = (0, 0, 1), line = (1, 0, 0):
#   image 0: 0.995 / 0.083 / 0.745 -> bar       image 1: 0.880 / 0 / 0.958 -> line
#   image 2: 0.970 / 0 / 0.857 -> bar (an unnormalised template mean, 0.686 vs 0.840, would say line)
#   image 3: 0.692 / 0.721 / 0.515 -> pie       image 4: 0.207 / 0.976 / 0.195 -> pie
HAND = ["bar", "line", "bar", "pie", "pie"]


class StubProcessor:
    """Texts -> row of TEXT; an image -> its index, stored in the red channel of its first pixel."""

    def __init__(self):
        self.texts = list(TEXT)

    def tokenizer(self, texts, **kwargs):
        ids = torch.tensor([[self.texts.index(t)] for t in texts])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def image_processor(self, images, **kwargs):
        return {"pixel_values": torch.tensor([[float(image.getpixel((0, 0))[0] // 10)] for image in images])}


class StubClip(torch.nn.Module):
    def __init__(self, images=IMAGES):
        super().__init__()
        self.config = PretrainedConfig(name_or_path="stub")
        self.register_buffer("image_table", torch.tensor(images))
        self.register_buffer("text_table", torch.tensor(list(TEXT.values())))
        self.image_calls = 0

    @property
    def device(self):
        return self.image_table.device

    @property
    def dtype(self):
        return self.image_table.dtype

    def get_image_features(self, pixel_values):
        self.image_calls += 1
        return self.image_table[pixel_values[:, 0].long()]

    def get_text_features(self, input_ids, attention_mask):
        return self.text_table[input_ids[:, 0]]


def png(index: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (4, 4), (index * 10, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def images_dataset(broken: bool = False) -> Dataset:
    values = [{"bytes": png(i), "path": None} for i in range(len(IMAGES))]
    if broken:
        values.insert(2, {"bytes": b"\x89PNG not really", "path": None})
    return Dataset.from_dict({"image": values}, features=Features({"image": Image()}))


def test_partition_equals_hand_computed_argmax():
    result = partition(images_dataset(), KEYWORDS, StubClip(), StubProcessor(), templates=TEMPLATES, batch_size=2)
    assert list(result["subgroup"]) == HAND
    # the same by the formula: argmax_k cos(f, normalised mean of normalised template embeddings)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    text = np.array(list(TEXT.values())).reshape(3, 2, 3)
    keywords = unit(unit(text).mean(1))
    assert [KEYWORDS[k] for k in (unit(np.array(IMAGES)) @ keywords.T).argmax(1)] == HAND
    assert subgroup_counts(result, KEYWORDS) == {"bar": 2, "pie": 2, "line": 1}


def test_undecodable_image_gets_no_subgroup_and_the_cache_is_reused(tmp_path):
    model = StubClip()
    first = partition(images_dataset(True), KEYWORDS, model, StubProcessor(), templates=TEMPLATES, cache_dir=tmp_path)
    assert list(first["subgroup"]) == HAND[:2] + [None] + HAND[2:]
    calls = model.image_calls
    again = partition(images_dataset(True), KEYWORDS, model, StubProcessor(), templates=TEMPLATES, cache_dir=tmp_path)
    assert list(again["subgroup"]) == list(first["subgroup"]) and model.image_calls == calls
    other = StubClip(images=[v[::-1] for v in IMAGES])  # other weights: recomputed, not read from the cache
    partition(images_dataset(True), KEYWORDS, other, StubProcessor(), templates=TEMPLATES, cache_dir=tmp_path)
    assert other.image_calls > 0 and len(list(tmp_path.glob("partition-*.arrow"))) == 2


def test_partition_task_with_a_real_tiny_clip_labels_every_row():
    spec = {"dataset": "shapes", "params": {"n_train": 6, "n_validation": 4, "n_test": 2}}
    task = TaskSpec.from_dict(
        {
            "skill": "Shapes.",
            "keywords": ["circle", "square"],
            "reference": {**spec, "split": "validation", "question_column": "question", "answer_column": "answer"},
            "candidates": {**spec, "split": "train"},
        }
    )
    clip, processor = hfdc.models.tiny("clip"), hfdc.models.tiny_processor("clip")
    parted = partition_task(task, clip, processor)
    assert set(parted.reference["subgroup"]) <= {"circle", "square"} and len(parted.candidates) == 6
    assert sum(subgroup_counts(parted.candidates, task.keywords).values()) == 6
