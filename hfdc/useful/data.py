"""Model inputs from the embedded data sets: feature patches -> ``x``, images -> ``pixel_values`` in [-1, 1]."""

from __future__ import annotations

import numpy as np
import torch
from datasets import Dataset, Image


def image_tensor(image, mode: str) -> torch.Tensor:
    """A PIL image as a [channels, height, width] float tensor in [-1, 1] (``mode`` "RGB" or "L")."""
    array = np.asarray(image.convert(mode), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy())


def image_mode(dataset: Dataset, column: str = "image") -> str:
    """ "L" for grey-scale images, else "RGB" (from the Image feature's mode, or the first image)."""
    mode = dataset.features[column].mode or dataset.with_format(None)[0][column].mode
    return "L" if mode == "L" else "RGB"


def model_inputs(dataset: Dataset) -> Dataset:
    """``dataset`` yielding only the model inputs (``x`` or ``pixel_values``) and ``labels``, as torch tensors."""
    if "label" not in dataset.column_names:
        raise ValueError(f"the data set needs a 'label' column; columns are {dataset.column_names}")
    if "x" in dataset.column_names:
        return dataset.rename_column("label", "labels").with_format("torch", columns=["x", "labels"])
    if "image" in dataset.column_names and isinstance(dataset.features["image"], Image):
        mode = image_mode(dataset)

        def transform(batch):
            return {
                "pixel_values": torch.stack([image_tensor(im, mode) for im in batch["image"]]),
                "labels": torch.tensor(batch["label"]),
            }

        return dataset.with_transform(transform)
    raise ValueError(
        f"the data set needs an 'x' (feature patches) or an Image 'image' column; columns are {dataset.column_names}"
    )
