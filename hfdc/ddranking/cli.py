"""``hfdc ddranking``: LRS / ARS of a distilled set (images + labels) against random subsets of the real data.

Writes ``ddranking.json`` (scores, their std, per-run accuracies) under ``output_dir`` and prints it.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import torch

import hfdc.data
from hfdc.ddranking.config import DDRankingConfig
from hfdc.ddranking.evaluator import Evaluator
from hfdc.models.images import image_mode, pixel_values


def load(config: DDRankingConfig, name: str, split: str):
    """Split ``split`` of data set ``name`` (hfdc.data.load; ``dataset_params`` apply to the real data set)."""
    data = hfdc.data.load(name, **(config.dataset_params if name == config.dataset else {}))
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise ValueError(f"data set {name!r} has no split {split!r}; its splits are {list(data)}")
        data = data[split]
    return data


def real_split(config: DDRankingConfig, split: str, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [-1, 1], labels) of a split of the real data, a seeded subset of ``rows`` when > 0."""
    dataset = load(config, config.dataset, split)
    missing = [c for c in (config.image_column, config.label_column) if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"columns {missing} (image_column / label_column) are not in {config.dataset!r}: {dataset.column_names}"
        )
    if 0 < rows < len(dataset):
        dataset = dataset.shuffle(seed=config.seed).select(range(rows))
    plain = dataset.with_format(None)
    mode = image_mode(dataset, config.image_column)
    images = pixel_values(plain[config.image_column], mode, config.image_size or None)
    return images, torch.as_tensor(plain[config.label_column], dtype=torch.long)


def distilled_set(config: DDRankingConfig, mode: str, size: int):
    """(images, labels, soft labels or None) of the distilled set: its exact ``pixel_values`` when it has them,
    else its ``image_column`` through hfdc.models.images."""
    data = load(config, config.distilled, config.distilled_split)
    if len(data) == 0:
        raise ValueError(f"the distilled set {config.distilled} is empty: there is nothing to evaluate")
    wanted = [config.distilled_label_column] + ([config.soft_label_column] if config.soft_label_column else [])
    missing = [c for c in wanted if c not in data.column_names]
    if missing:
        raise ValueError(
            f"columns {missing} (distilled_label_column / soft_label_column) are not in {config.distilled}: "
            f"{data.column_names}"
        )
    if "pixel_values" in data.column_names:
        images = data.with_format("torch", columns=["pixel_values"])[:]["pixel_values"]
    else:
        images = pixel_values(data.with_format(None)[config.image_column], mode, size)
    labels = torch.as_tensor(data.with_format(None)[config.distilled_label_column], dtype=torch.long)
    soft = None
    if config.soft_label_column:
        soft = data.with_format("torch", columns=[config.soft_label_column])[:][config.soft_label_column].float()
    return images, labels, soft


def run(config: DDRankingConfig) -> dict:
    train_images, train_labels = real_split(config, config.train_split, config.num_train_rows)
    test_images, test_labels = real_split(config, config.test_split, config.num_test_rows)
    mode = "L" if train_images.shape[1] == 1 else "RGB"
    images, labels, soft = distilled_set(config, mode, train_images.shape[-1])
    teacher = None
    if config.teacher_model:
        from transformers import AutoModelForImageClassification

        teacher = AutoModelForImageClassification.from_pretrained(config.teacher_model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train_images, train_labels, test_images, test_labels, images, labels = (
        t.to(device) for t in (train_images, train_labels, test_images, test_labels, images, labels)
    )
    soft = soft.to(device) if soft is not None else None
    evaluator = Evaluator(train_images, train_labels, test_images, test_labels, config, teacher=teacher)
    result = evaluator.evaluate(images, labels, soft, metrics=tuple(config.metrics))
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ddranking.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    return result
