"""Latent classes of the pool, their centroids, and which process owns which rows and classes.

Under ``accelerate launch`` / torchrun every process reads one contiguous range of rows (zero-shot classes,
centroid sums, the pool's cross-covariance sum, the NaN check) and, later, the rows of the classes it owns;
:func:`pool_summary` combines the per-range pieces so every process sees the same partition.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from hfdc.clipcov.checks import CHUNK_ROWS, as_rows, as_tensor, check_finite, read_rows
from hfdc.clipcov.covariance import outer_sum
from hfdc.clipcov.scores import normalize
from hfdc.distributed import process_state


def process_shard() -> tuple[int, int]:
    """(index, count) of this process under ``accelerate launch`` / torchrun; (0, 1) otherwise."""
    state = process_state()
    return state.process_index, state.num_processes


def gather(obj) -> list:
    """``obj`` of every process, in process order (``[obj]`` in a single process)."""
    if process_shard()[1] == 1:
        return [obj]
    from accelerate.utils import gather_object

    return gather_object([obj])


def row_range(size: int, shard_index: int, num_shards: int) -> slice:
    """The contiguous rows process ``shard_index`` of ``num_shards`` reads for the pool summary."""
    return slice(size * shard_index // num_shards, size * (shard_index + 1) // num_shards)


def nearest_class(image: torch.Tensor, class_text: torch.Tensor) -> np.ndarray:
    """argmax_c cos(img_i, class_text_c) for normalised image rows and normalised class prompt embeddings."""
    return (image @ class_text.T).argmax(1).numpy()


def latent_classes(image_embeds, class_text_embeds, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Zero-shot latent class of each pair: argmax_c cos(img_i, class-name prompt embedding c)."""
    image = as_rows(image_embeds, "image_embeds")
    class_text = normalize(torch.as_tensor(np.asarray(class_text_embeds)))
    size = image.shape[0]
    labels = np.empty(size, dtype=np.int64)
    for start in tqdm(range(0, size, chunk_rows), desc="zero-shot classes", leave=False):
        labels[start : start + chunk_rows] = nearest_class(
            read_rows(image, slice(start, start + chunk_rows)), class_text
        )
    return labels


class ClassPartition:
    """Row indices grouped by class, each class's normalised image / caption centroid (zero if empty), and the
    pool's cross-covariance sum sum_i x_i y_i^T."""

    def __init__(self, labels: np.ndarray, image_sums: torch.Tensor, text_sums: torch.Tensor, pool_covariance):
        self.labels = labels
        self.order = np.argsort(labels, kind="stable")
        self.sizes = np.bincount(labels, minlength=image_sums.shape[0])
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)])
        self.present = torch.from_numpy(self.sizes > 0)
        self.image_centroids = normalize(image_sums)
        self.text_centroids = normalize(text_sums)
        self.pool_covariance = pool_covariance

    def members(self, c: int) -> np.ndarray:
        """Row indices of class ``c``, ascending."""
        return self.order[self.starts[c] : self.starts[c + 1]]

    def owned_classes(self, shard_index: int, num_shards: int) -> np.ndarray:
        """The non-empty classes a process scores: classes by descending size, dealt round-robin."""
        by_size = np.lexsort((np.arange(len(self.sizes)), -self.sizes))
        by_size = by_size[self.sizes[by_size] > 0]
        return np.sort(by_size[shard_index::num_shards])


def range_summary(
    image, text, labels, class_text, rows: slice, num_classes: int, chunk_rows: int = CHUNK_ROWS
) -> dict:
    """Labels (zero-shot when ``labels`` is None), per-class embedding sums and sum x y^T over ``rows``.

    The sums are float64, so the centroids do not depend on how the rows are split among processes.

    A NaN or inf in those rows is reported as ``error`` (raised by :func:`pool_summary` on every process).
    """
    dim = image.shape[1]
    class_text = None if class_text is None else normalize(torch.from_numpy(class_text))
    sums = {name: torch.zeros(num_classes, dim, dtype=torch.float64) for name in ("image_sums", "text_sums")}
    part = {"labels": [], **sums}
    part.update(covariance=np.zeros((dim, dim)), error=None)
    for start in range(rows.start, rows.stop, chunk_rows):
        index = slice(start, min(rows.stop, start + chunk_rows))
        raw = {"image_embeds": np.asarray(image[index]), "text_embeds": np.asarray(text[index])}
        try:
            for name, block in raw.items():
                check_finite(block, name)
        except ValueError as err:
            part["error"] = str(err)
            return part
        block_image, block_text = (normalize(as_tensor(b)) for b in raw.values())
        block_labels = nearest_class(block_image, class_text) if labels is None else labels[index]
        part["labels"].append(block_labels)
        part["image_sums"].index_add_(0, torch.from_numpy(block_labels), block_image.double())
        part["text_sums"].index_add_(0, torch.from_numpy(block_labels), block_text.double())
        part["covariance"] += outer_sum(block_image, block_text)
    return part


def pool_summary(image, text, labels, class_text, num_classes: int) -> ClassPartition:
    """The :class:`ClassPartition` of the whole pool, each process reading only its :func:`row_range`."""
    shard_index, num_shards = process_shard()
    rows = row_range(image.shape[0], shard_index, num_shards)
    parts = gather(range_summary(image, text, labels, class_text, rows, num_classes))
    errors = [p["error"] for p in parts if p["error"]]
    if errors:
        raise ValueError(errors[0])
    all_labels = np.concatenate([np.concatenate(p["labels"]) for p in parts if p["labels"]])
    return ClassPartition(
        all_labels,
        sum(p["image_sums"] for p in parts),
        sum(p["text_sums"] for p in parts),
        sum(p["covariance"] for p in parts),
    )
