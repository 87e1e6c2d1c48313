"""Input checks shared by CLIPCov and its baselines: budget, embedding arrays, labels.

Embeddings arrive as row-indexable arrays: numpy arrays, ``np.memmap`` files, CPU torch tensors, or any object
with ``shape``, ``dtype`` and ``__getitem__`` for row slices and sorted row-index arrays (h5py, zarr). Nothing
here reads the rows; :func:`read_rows` reads the rows a caller asks for, so a memory-mapped pool is only
paged in where it is used.
"""

from __future__ import annotations

import numpy as np
import torch

from hfdc.clipcov.scores import normalize

CHUNK_ROWS = 16384  # rows read at once where a whole range is streamed (~100 MB of float32 temporaries at d=512)


def check_fraction(fraction: float, size: int) -> int:
    """The total budget round(fraction * size); a ValueError when fraction is outside (0, 1] or selects nothing."""
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    total = int(round(fraction * size))
    if total < 1:
        raise ValueError(f"fraction={fraction} of {size} examples selects nothing; raise the fraction")
    return total


def as_rows(x, name: str):
    """``x`` as a row-indexable array without reading it: torch tensors become numpy views, lists numpy arrays."""
    if x is None:
        raise ValueError(f"{name} is required")
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    if isinstance(x, np.ndarray) or all(hasattr(x, a) for a in ("shape", "dtype", "__getitem__")):
        return x
    return np.asarray(x)


def as_tensor(block) -> torch.Tensor:
    """Rows already read as a CPU tensor (copied when the array is read-only, as a memory map opened "r" is)."""
    block = np.ascontiguousarray(block)
    return torch.from_numpy(block if block.flags.writeable else block.copy())


def read_rows(x, rows) -> torch.Tensor:
    """Rows of ``x`` (a slice, or an ascending index array) as an L2-normalised float32 tensor."""
    return normalize(as_tensor(x[rows]))


def check_embeddings(image_embeds, text_embeds, class_text_embeds=None):
    """(image, text, class_text) as row-indexable arrays: 2-D, same rows, same width, floating point.

    Finiteness is checked where rows are read (:func:`check_finite`), so this never touches the data.
    """
    if text_embeds is None:
        raise ValueError("text_embeds is missing: every image needs its caption embedding (captions missing?)")
    image, text = as_rows(image_embeds, "image_embeds"), as_rows(text_embeds, "text_embeds")
    class_text = None if class_text_embeds is None else as_rows(class_text_embeds, "class_text_embeds")
    for name, x in (("image_embeds", image), ("text_embeds", text), ("class_text_embeds", class_text)):
        if x is None:
            continue
        if len(x.shape) != 2:
            raise ValueError(f"{name} must be 2-D [rows, dim], got shape {tuple(x.shape)}")
        if not np.issubdtype(np.dtype(x.dtype), np.floating):
            raise TypeError(f"{name} must be floating point, got {x.dtype}")
    if image.shape[0] != text.shape[0]:
        raise ValueError(
            f"image_embeds has {image.shape[0]} rows but text_embeds has {text.shape[0]}; they must be aligned pairs"
        )
    if image.shape[0] == 0:
        raise ValueError("image_embeds and text_embeds are empty")
    for name, x in (("text_embeds", text), ("class_text_embeds", class_text)):
        if x is not None and x.shape[1] != image.shape[1]:
            raise ValueError(
                f"embedding dims differ: image_embeds has dim {image.shape[1]}, {name} has "
                f"dim {x.shape[1]}; embed both with the same CLIP model"
            )
    if class_text is not None:
        class_text = np.asarray(class_text)
        check_finite(class_text, "class_text_embeds")
    return image, text, class_text


def check_finite(block, name: str) -> None:
    """A ValueError naming ``name`` when ``block`` (rows already read) holds NaN or inf."""
    if not np.isfinite(np.asarray(block).sum(dtype=np.float64)):
        raise ValueError(f"{name} contains NaN or inf; recompute the embeddings")


def check_labels(labels, size: int, num_classes: int | None) -> tuple[np.ndarray, int]:
    """Integer labels in [0, C) where every class has an example; returns (labels, C)."""
    labels = np.asarray(labels)
    if labels.shape != (size,):
        raise ValueError(f"labels must have one entry per pair ({size}), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integer class ids, got dtype {labels.dtype}")
    if labels.min() < 0:
        raise ValueError(f"labels must be >= 0, got {labels.min()}")
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    if labels.max() >= num_classes:
        raise ValueError(f"label {labels.max()} has no row in class_text_embeds ({num_classes} classes)")
    empty = np.flatnonzero(np.bincount(labels, minlength=num_classes) == 0)
    if len(empty):
        raise ValueError(
            f"classes {empty[:10].tolist()} have no examples; drop them from class_text_embeds "
            "or relabel to consecutive ids"
        )
    return labels.astype(np.int64), num_classes
