"""``hfdc.clipcov.select``: CLIPCov subset selection on precomputed CLIP embeddings, sharded by class.

Joshi, Jain, Payani, Mirzasoleiman, "Data-Efficient Contrastive Language-Image Pretraining:
Prioritizing Data Quality over Quantity", AISTATS 2024, arXiv 2403.12267.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from hfdc.clipcov.budgets import check_fraction, class_budgets
from hfdc.clipcov.greedy import diminishing_returns_greedy
from hfdc.clipcov.scores import PENALTIES, class_scores, normalize
from hfdc.distributed import process_state


@dataclass
class SelectionResult:
    """Selected row indices (ascending), a score per row, and the selected count per class."""

    indices: np.ndarray
    scores: np.ndarray
    per_class: dict[int, int]
    labels: np.ndarray | None = None
    method: str = "clipcov"
    params: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.indices)

    def score_statistics(self) -> dict[str, float]:
        """Mean / std / min / max of the scores over all rows and over the selected rows."""
        stats = {}
        for name, values in (("all", self.scores), ("selected", self.scores[self.indices])):
            values = values[np.isfinite(values)]
            if len(values):
                stats.update(
                    {
                        f"score_{name}_{k}": round(float(f(values)), 6)
                        for k, f in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max))
                    }
                )
        return stats


def as_tensor(x, name: str) -> torch.Tensor:
    """A CPU tensor view of an array-like (no copy for numpy / torch inputs)."""
    if x is None:
        raise ValueError(f"{name} is required")
    tensor = torch.from_numpy(x) if isinstance(x, np.ndarray) else torch.as_tensor(x)
    return tensor.detach().cpu()


def check_embeddings(image_embeds, text_embeds, class_text_embeds=None):
    """Validated (image, text, class_text) tensors: 2-D, same rows, same width, finite."""
    if text_embeds is None:
        raise ValueError("text_embeds is missing: every image needs its caption embedding (captions missing?)")
    image, text = as_tensor(image_embeds, "image_embeds"), as_tensor(text_embeds, "text_embeds")
    class_text = None if class_text_embeds is None else as_tensor(class_text_embeds, "class_text_embeds")
    for name, x in (("image_embeds", image), ("text_embeds", text), ("class_text_embeds", class_text)):
        if x is None:
            continue
        if x.ndim != 2:
            raise ValueError(f"{name} must be 2-D [rows, dim], got shape {tuple(x.shape)}")
        if not torch.is_floating_point(x):
            raise TypeError(f"{name} must be floating point, got {x.dtype}")
        if not all(torch.isfinite(x[i : i + 65536].sum(dtype=torch.float64)) for i in range(0, x.shape[0], 65536)):
            raise ValueError(f"{name} contains NaN or inf; recompute the embeddings")
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
    return image, text, class_text


def latent_classes(image_embeds, class_text_embeds, chunk_rows: int = 65536) -> np.ndarray:
    """Zero-shot latent class of each pair: argmax_c cos(img_i, class-name prompt embedding c)."""
    image = as_tensor(image_embeds, "image_embeds")
    class_text = normalize(as_tensor(class_text_embeds, "class_text_embeds"))
    labels = np.empty(image.shape[0], dtype=np.int64)
    for start in tqdm(range(0, image.shape[0], chunk_rows), desc="zero-shot classes", leave=False):
        block = normalize(image[start : start + chunk_rows])
        labels[start : start + chunk_rows] = (block @ class_text.T).argmax(1).numpy()
    return labels


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


class ClassPartition:
    """Row indices grouped by class, and each class's normalised image / caption centroid (zero if empty)."""

    def __init__(
        self, image: torch.Tensor, text: torch.Tensor, labels: np.ndarray, num_classes: int, chunk_rows: int = 65536
    ):
        self.labels = labels
        self.order = np.argsort(labels, kind="stable")
        self.sizes = np.bincount(labels, minlength=num_classes)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)])
        self.present = torch.from_numpy(self.sizes > 0)
        self.image_centroids = torch.zeros(num_classes, image.shape[1])
        self.text_centroids = torch.zeros(num_classes, image.shape[1])
        for start in range(0, len(labels), chunk_rows):  # contiguous chunks: no gather over the data
            index = torch.from_numpy(labels[start : start + chunk_rows])
            self.image_centroids.index_add_(0, index, normalize(image[start : start + chunk_rows]))
            self.text_centroids.index_add_(0, index, normalize(text[start : start + chunk_rows]))
        self.image_centroids = normalize(self.image_centroids)
        self.text_centroids = normalize(self.text_centroids)

    def members(self, c: int) -> np.ndarray:
        return self.order[self.starts[c] : self.starts[c + 1]]


def process_shard() -> tuple[int, int]:
    """(index, count) of this process under ``accelerate launch`` / torchrun; (0, 1) otherwise."""
    state = process_state()
    return state.process_index, state.num_processes


def shard_classes(sizes: np.ndarray, shard_index: int, num_shards: int) -> np.ndarray:
    """The non-empty classes this shard owns: classes by descending size, dealt round-robin."""
    by_size = np.lexsort((np.arange(len(sizes)), -sizes))
    by_size = by_size[sizes[by_size] > 0]
    return np.sort(by_size[shard_index::num_shards])


def select_classes(
    image,
    text,
    partition: ClassPartition,
    budgets,
    classes,
    class_text,
    tiebreak,
    threshold,
    block_size,
    penalty,
    show_progress=True,
) -> tuple[np.ndarray, np.ndarray]:
    """(selected rows, scores with NaN outside ``classes``) for the given classes only."""
    scores = np.full(len(partition.labels), np.nan, dtype=np.float32)
    selected = []
    for c in tqdm(classes, desc="clipcov classes", disable=not show_progress, leave=False):
        rows = partition.members(c)
        index = torch.from_numpy(rows)
        img, txt = normalize(image[index]), normalize(text[index])
        label_text = None if class_text is None else class_text[c]
        s = class_scores(
            img,
            txt,
            int(c),
            partition.image_centroids,
            partition.text_centroids,
            partition.present,
            label_text,
            threshold,
            penalty,
        )
        scores[rows] = s.numpy()
        picks = diminishing_returns_greedy(img, txt, s.numpy(), int(budgets[c]), tiebreak[rows], block_size, threshold)
        selected.append(rows[picks])
    rows = np.concatenate(selected) if selected else np.zeros(0, dtype=np.int64)
    return rows, scores


def select(
    image_embeds,
    text_embeds,
    fraction: float,
    labels=None,
    class_text_embeds=None,
    seed: int = 0,
    threshold: float | None = 0.0,
    block_size: int = 200,
    penalty: str = "max",
    show_progress: bool = True,
) -> SelectionResult:
    """CLIPCov: pick round(fraction * N) image-caption pairs that preserve the cross-covariance.

    Per latent class (``labels``, or zero-shot against ``class_text_embeds`` when no labels are given):
    score_i = cross_i + 2 * easiness_i + label_i / 2 - penalty_i (similarities below ``threshold`` set
    to 0 in cross; ``None`` or <= -1 disables), then the batched greedy with diminishing returns picks the
    class's budget (proportional to its size). ``seed`` orders equal scores. Under ``accelerate
    launch`` each process scores a disjoint set of classes and every process gets the merged result.
    The per-class work is many small ops: on a busy CPU one torch thread per process is fastest
    (``torch.set_num_threads(1)``; benchmarks/notes/clipcov_throughput.md).
    """
    image, text, class_text = check_embeddings(image_embeds, text_embeds, class_text_embeds)
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
    check_fraction(fraction, image.shape[0])
    if threshold is not None and threshold <= -1:
        threshold = None  # cosines are >= -1: nothing would be zeroed, so use the factorised sums
    if labels is None:
        if class_text is None:
            raise ValueError(
                "pass labels= or class_text_embeds= (class-name prompt embeddings for zero-shot latent classes)"
            )
        labels, num_classes = latent_classes(image, class_text), class_text.shape[0]
    else:
        labels, num_classes = check_labels(labels, image.shape[0], None if class_text is None else class_text.shape[0])
    if class_text is not None:
        class_text = normalize(class_text)
    partition = ClassPartition(image, text, labels, num_classes)
    budgets = class_budgets(partition.sizes, fraction)
    tiebreak = np.random.default_rng(seed).permutation(image.shape[0])
    shard_index, num_shards = process_shard()
    classes = shard_classes(partition.sizes, shard_index, num_shards)
    rows, scores = select_classes(
        image, text, partition, budgets, classes, class_text, tiebreak, threshold, block_size, penalty, show_progress
    )
    if num_shards > 1:
        rows, scores = gather_shards(rows, scores)
    params = {"fraction": fraction, "threshold": threshold, "block_size": block_size, "penalty": penalty, "seed": seed}
    return SelectionResult(
        np.sort(rows), scores, per_class_counts(labels, rows, num_classes), labels, "clipcov", params
    )


def gather_shards(rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of every process's selected rows, and their scores merged (each row scored by one process)."""
    from accelerate.utils import gather_object

    parts = gather_object([(rows, scores)])
    merged = np.full_like(scores, np.nan)
    for _, part in parts:
        owned = ~np.isnan(part)
        merged[owned] = part[owned]
    return np.concatenate([r for r, _ in parts]), merged


def per_class_counts(labels: np.ndarray | None, rows: np.ndarray, num_classes: int | None = None) -> dict[int, int]:
    """class id -> number of selected rows (every class listed, zeros included); {} without labels."""
    if labels is None:
        return {}
    counts = np.bincount(labels[rows], minlength=num_classes or int(labels.max()) + 1)
    return {int(c): int(n) for c, n in enumerate(counts)}
