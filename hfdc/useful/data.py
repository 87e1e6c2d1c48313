"""Model inputs from the data sets: feature patches -> ``x``, images -> ``pixel_values`` in [-1, 1]."""

from __future__ import annotations

import torch
from datasets import Dataset, DatasetDict, Image

import hfdc.data
from hfdc.models.images import image_mode, pixel_values


def model_inputs(dataset: Dataset) -> Dataset:
    """``dataset`` yielding only the model inputs (``x`` or ``pixel_values``) and ``labels``, as torch tensors."""
    if "label" not in dataset.column_names:
        raise ValueError(f"the data set needs a 'label' column; columns are {dataset.column_names}")
    if "x" in dataset.column_names:
        return dataset.rename_column("label", "labels").with_format("torch", columns=["x", "labels"])
    if "image" in dataset.column_names and isinstance(dataset.features["image"], Image):
        mode = image_mode(dataset)

        def transform(batch):
            return {"pixel_values": pixel_values(batch["image"], mode), "labels": torch.tensor(batch["label"])}

        return dataset.with_transform(transform)
    raise ValueError(
        f"the data set needs an 'x' (feature patches) or an Image 'image' column; columns are {dataset.column_names}"
    )


def load_splits(config) -> DatasetDict:
    """``hfdc.data.load(config.dataset, **config.dataset_params)`` with ``image_column`` / ``label_column`` renamed
    to image / label; it must have train and test splits."""
    data = hfdc.data.load(config.dataset, **config.dataset_params)
    missing = {"train", "test"} - set(data)
    if missing:
        raise ValueError(f"data set {config.dataset!r} has splits {sorted(data)}; it needs {sorted(missing)} too")
    columns = data["train"].column_names
    renames = {c: n for c, n in ((config.image_column, "image"), (config.label_column, "label")) if c != n}
    missing = [c for c in renames if c not in columns]
    data = data.rename_columns({c: n for c, n in renames.items() if c in columns})
    columns = data["train"].column_names
    if missing or "label" not in columns or not {"image", "x"} & set(columns):
        raise ValueError(
            f"data set {config.dataset!r} needs a label and an image (or feature-patch 'x') column; its columns are "
            f"{columns}: set image_column / label_column"
        )
    return data
