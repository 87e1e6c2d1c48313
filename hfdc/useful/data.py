"""Model inputs from the data sets: feature patches -> ``x``, images -> ``pixel_values`` in [-1, 1] (training rows
optionally augmented by random crop + flip), plus ``labels`` and a ``loss_weight`` column where there is one."""

from __future__ import annotations

from datasets import Dataset, DatasetDict, Image

import hfdc.data
from hfdc.models.images import image_mode, image_transform


def model_inputs(dataset: Dataset, crop_padding: int = 0, flip: bool = False, seed: int = 0) -> Dataset:
    """``dataset`` yielding only the model inputs (``x`` or ``pixel_values``), ``labels`` and, when the data set has
    one, ``loss_weight``; images augmented by :func:`hfdc.models.images.random_crop_flip` (seeded by ``seed``) when
    ``crop_padding`` > 0 or ``flip`` (for training rows only)."""
    if "label" not in dataset.column_names:
        raise ValueError(f"the data set needs a 'label' column; columns are {dataset.column_names}")
    weights = ["loss_weight"] if "loss_weight" in dataset.column_names else []
    if "x" in dataset.column_names:
        if crop_padding or flip:
            raise ValueError(
                "random_crop_padding / random_flip augment images, and this data set has feature patches ('x'): "
                "set random_crop_padding=0 and random_flip=false"
            )
        return dataset.rename_column("label", "labels").with_format("torch", columns=["x", "labels", *weights])
    if "image" in dataset.column_names and isinstance(dataset.features["image"], Image):
        transform = image_transform(image_mode(dataset), crop_padding=crop_padding, flip=flip, seed=seed)
        rows = dataset.select_columns(["image", "label", *weights]).rename_column("label", "labels")
        return rows.with_transform(transform)
    raise ValueError(
        f"the data set needs an 'x' (feature patches) or an Image 'image' column; columns are {dataset.column_names}"
    )


def training_inputs(config, train: Dataset) -> Dataset:
    """:func:`model_inputs` of the training rows with the config's augmentation (``random_crop_padding``,
    ``random_flip``, seeded by ``seed``)."""
    return model_inputs(train, config.random_crop_padding, config.random_flip, config.seed)


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
