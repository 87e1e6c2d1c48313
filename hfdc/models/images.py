"""The one place hfdc turns images into model inputs and back: PIL <-> [-1, 1] pixel tensors.

x = p / 127.5 - 1 for 8-bit pixels p (channels first), and p = round((clamp(x, -1, 1) + 1) * 127.5) back.
Classifiers, the DDPM trainer and the SDEdit generators all read images through these functions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image as PILImage

MODES = ("L", "RGB")


def image_mode(dataset, column: str = "image") -> str:
    """ "L" for grey-scale images, else "RGB" (from the Image feature's mode, or the first image)."""
    mode = dataset.features[column].mode or dataset.with_format(None)[0][column].mode
    return "L" if mode == "L" else "RGB"


def to_tensor(image: PILImage.Image, mode: str, size: int | None = None) -> torch.Tensor:
    """A PIL image as a [channels, height, width] float tensor in [-1, 1], converted to ``mode`` ("L" or "RGB")
    and resized (bicubic) to ``size`` x ``size`` when given."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    image = image.convert(mode)
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), PILImage.BICUBIC)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy())


def to_pil(tensor: torch.Tensor, mode: str) -> PILImage.Image:
    """A [channels, height, width] tensor in [-1, 1] as a PIL image of ``mode`` ("L" or "RGB")."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    array = ((tensor.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return PILImage.fromarray(array[..., 0] if mode == "L" else array, mode=mode)


def pixel_values(images, mode: str, size: int | None = None) -> torch.Tensor:
    """A batch [n, channels, size, size] of :func:`to_tensor` images."""
    return torch.stack([to_tensor(image, mode, size) for image in images])


def image_transform(mode: str, image_column: str = "image", size: int | None = None) -> Callable[[dict], dict]:
    """A ``Dataset.set_transform`` function replacing ``image_column`` by ``pixel_values`` (:func:`pixel_values`).

    Other columns pass through unchanged. With ``Trainer``, set ``remove_unused_columns=False`` (otherwise the
    Trainer drops the image column before the transform sees it).
    """

    def transform(batch: dict) -> dict:
        if image_column not in batch:
            raise ValueError(f"image_transform: column {image_column!r} not found; columns are {list(batch)}.")
        out = {key: value for key, value in batch.items() if key != image_column}
        out["pixel_values"] = pixel_values(batch[image_column], mode, size)
        return out

    return transform
