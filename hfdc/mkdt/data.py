"""The rows MKDT works on: a seeded subset of a split, as [-1, 1] pixel tensors and class labels."""

from __future__ import annotations

import torch
from datasets import Dataset

import hfdc.data
from hfdc.models.images import image_mode, pixel_values


def load_split(config, split: str, rows: int = 0) -> Dataset:
    """Split ``split`` of ``config.dataset``; with ``rows`` > 0 a seeded (``config.seed``) random subset of that
    many rows in their original order. A ValueError names a missing split or column."""
    data = hfdc.data.load(config.dataset, **config.dataset_params)
    if split not in data:
        raise ValueError(f"data set {config.dataset!r} has no split {split!r}; its splits are {list(data)}")
    dataset = data[split]
    if config.image_column not in dataset.column_names:
        raise ValueError(
            f"image_column={config.image_column!r} is not a column of {config.dataset!r}; columns are "
            f"{dataset.column_names}"
        )
    if 0 < rows < len(dataset):
        generator = torch.Generator().manual_seed(config.seed)
        dataset = dataset.select(sorted(torch.randperm(len(dataset), generator=generator)[:rows].tolist()))
    return dataset


def pixels(config, dataset: Dataset, batch_size: int = 1024) -> torch.Tensor:
    """The images of ``dataset`` as one [rows, channels, side, side] tensor in [-1, 1] (``config.image_size``)."""
    mode, size = image_mode(dataset, config.image_column), config.image_size or None
    column = dataset.select_columns([config.image_column])
    return torch.cat(
        [
            pixel_values(column[start : start + batch_size][config.image_column], mode, size)
            for start in range(0, len(dataset), batch_size)
        ]
    )


def labels(config, dataset: Dataset) -> torch.Tensor:
    """The class labels of ``dataset`` as a long tensor; a ValueError when ``config.label_column`` is missing."""
    if config.label_column not in dataset.column_names:
        raise ValueError(
            f"label_column={config.label_column!r} is not a column of the data set (needed by the linear probes); "
            f"columns are {dataset.column_names}"
        )
    return torch.as_tensor(dataset.with_format(None)[config.label_column], dtype=torch.long)
