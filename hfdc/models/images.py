"""The one place hfdc turns images into model inputs and back: PIL <-> [-1, 1] pixel tensors.

x = p / 127.5 - 1 for 8-bit pixels p (channels first), and p = round((clamp(x, -1, 1) + 1) * 127.5) back.
Classifiers, the DDPM trainer and the SDEdit generators all read images through these functions, and
training sets get the standard random crop + horizontal flip augmentation here (:func:`random_crop_flip`).
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


def random_crop_flip(
    pixels: torch.Tensor, crop_padding: int = 0, flip: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The standard training-time augmentation of a batch [n, channels, h, w] in [-1, 1] (He et al., 2016).

    Random crop: pad every side with ``crop_padding`` black pixels (-1) and cut the h x w window at offsets
    (dy, dx) drawn uniformly from {0, ..., 2 * crop_padding}^2, per image. Flip (when ``flip``): mirror
    left-right with probability 1/2, per image; leave it off where a mirror image changes the class (digits).
    """
    if crop_padding < 0:
        raise ValueError(f"crop_padding must be >= 0 pixels, got {crop_padding}")
    n, _, height, width = pixels.shape
    if crop_padding:
        padded = torch.nn.functional.pad(pixels, (crop_padding,) * 4, value=-1.0)
        offsets = torch.randint(0, 2 * crop_padding + 1, (n, 2), generator=generator).tolist()
        pixels = torch.stack([padded[i, :, dy : dy + height, dx : dx + width] for i, (dy, dx) in enumerate(offsets)])
    if flip:
        mirrored = torch.rand(n, generator=generator) < 0.5
        pixels = torch.where(mirrored[:, None, None, None], pixels.flip(-1), pixels)
    return pixels


def _augmentation_generator(generators: dict, seed: int) -> torch.Generator:
    """The generator of this process (seeded by ``seed``) or of this DataLoader worker (by ``seed`` and the
    worker's own seed, which torch draws each epoch from the main process's seeded RNG)."""
    from torch.utils.data import get_worker_info

    worker = get_worker_info()
    key = None if worker is None else worker.seed
    if key not in generators:
        entropy = [seed] if key is None else [seed, key % 2**32]
        generators[key] = torch.Generator().manual_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))
    return generators[key]


def image_transform(
    mode: str,
    image_column: str = "image",
    size: int | None = None,
    crop_padding: int = 0,
    flip: bool = False,
    seed: int = 0,
) -> Callable[[dict], dict]:
    """A ``Dataset.set_transform`` function replacing ``image_column`` by ``pixel_values`` (:func:`pixel_values`),
    augmented by :func:`random_crop_flip` when ``crop_padding`` > 0 or ``flip`` (training sets only), seeded by
    ``seed``: the same seed gives the same sequence of crops and flips.

    Other columns pass through unchanged. With ``Trainer``, set ``remove_unused_columns=False`` (otherwise the
    Trainer drops the image column before the transform sees it).
    """
    if crop_padding < 0:
        raise ValueError(f"crop_padding must be >= 0 pixels, got {crop_padding}")
    generators: dict = {}

    def transform(batch: dict) -> dict:
        if image_column not in batch:
            raise ValueError(f"image_transform: column {image_column!r} not found; columns are {list(batch)}.")
        out = {key: value for key, value in batch.items() if key != image_column}
        out["pixel_values"] = pixel_values(batch[image_column], mode, size)
        if crop_padding or flip:
            generator = _augmentation_generator(generators, seed)
            out["pixel_values"] = random_crop_flip(out["pixel_values"], crop_padding, flip, generator)
        return out

    return transform
