"""``hfdc.clipcov.select``: CLIPCov subset selection on precomputed CLIP embeddings, sharded by class.

Joshi, Jain, Payani, Mirzasoleiman, "Data-Efficient Contrastive Language-Image Pretraining:
Prioritizing Data Quality over Quantity", AISTATS 2024, arXiv 2403.12267.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from hfdc.clipcov.allocation import ALLOCATIONS, global_counts, proportional_budgets, stream_keys, unfinished
from hfdc.clipcov.checks import check_embeddings, check_fraction, check_labels, read_rows
from hfdc.clipcov.covariance import cross_covariance_error, cross_covariance_sum
from hfdc.clipcov.greedy import ClassGreedy
from hfdc.clipcov.partition import ClassPartition, gather, pool_summary, process_shard
from hfdc.clipcov.scores import PENALTIES, class_scores, normalize


@dataclass
class SelectionResult:
    """Selected row indices (ascending), a score per row, the selected count per class, the subset's
    cross-covariance error ||Sigma_xy(S) - Sigma_xy(V)||_F (``hfdc.clipcov.covariance``), and how many pool
    rows were left out before selecting (undecodable images; their score is NaN, their label -1)."""

    indices: np.ndarray
    scores: np.ndarray
    per_class: dict[int, int]
    labels: np.ndarray | None = None
    method: str = "clipcov"
    params: dict = field(default_factory=dict)
    cross_covariance_error: float | None = None
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.indices)

    def on_pool(self, rows: np.ndarray, size: int) -> SelectionResult:
        """This result of a selection among pool ``rows`` (ascending) restated on the whole pool of ``size`` rows."""
        scores = np.full(size, np.nan, dtype=np.float32)
        scores[rows] = self.scores
        labels = None
        if self.labels is not None:
            labels = np.full(size, -1, dtype=np.int64)
            labels[rows] = self.labels
        return dataclasses.replace(
            self, indices=rows[self.indices], scores=scores, labels=labels, skipped=self.skipped + size - len(rows)
        )

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


class ClassStreams:
    """The :class:`~hfdc.clipcov.greedy.ClassGreedy` stream of every class this process owns, and their scores."""

    def __init__(self, image, text, partition: ClassPartition, classes, class_text, tiebreak, options: dict):
        self.image, self.text, self.partition = image, text, partition
        self.threshold, self.block_size = options["threshold"], options["block_size"]
        self.class_text, self.tiebreak, self.penalty = class_text, tiebreak, options["penalty"]
        self.classes = classes
        self.streams: dict[int, ClassGreedy] = {}
        self.scores: dict[int, np.ndarray] = {}

    def embeddings(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.partition.members(c)
        return read_rows(self.image, rows), read_rows(self.text, rows)

    def start(self, lengths: dict[int, int], show_progress: bool) -> None:
        """Score every owned class and grow its stream to ``lengths[c]`` picks."""
        p = self.partition
        for c in tqdm(self.classes, desc="clipcov classes", disable=not show_progress, leave=False):
            c = int(c)
            image, text = self.embeddings(c)
            label_text = None if self.class_text is None else self.class_text[c]
            scores = class_scores(
                image,
                text,
                c,
                p.image_centroids,
                p.text_centroids,
                p.present,
                label_text,
                self.threshold,
                self.penalty,
            )
            self.scores[c] = scores.total.numpy()
            self.streams[c] = ClassGreedy(scores, self.tiebreak[p.members(c)], self.block_size)
            self.streams[c].extend(image, text, lengths.get(c, 0), self.threshold)

    def extend(self, c: int, length: int) -> None:
        self.streams[c].extend(*self.embeddings(c), length, self.threshold)

    def keys(self) -> dict[int, np.ndarray]:
        return {c: stream_keys(s.values) for c, s in self.streams.items()}

    def selected(self, counts: dict[int, int]) -> np.ndarray:
        """Rows this process selects: the first ``counts[c]`` picks of each owned class, ascending."""
        parts = [self.partition.members(c)[s.positions[: counts[c]]] for c, s in self.streams.items()]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def allocate(streams: ClassStreams, budgets: dict[int, int], total: int, allocation: str, class_rank) -> dict:
    """class -> number of its stream's picks kept (see ``hfdc.clipcov.allocation``); ``global`` grows the
    streams of classes whose whole computed stream is kept until none is, each round one gather."""
    if allocation == "proportional":
        return budgets
    while True:
        keys = {c: k for part in gather(streams.keys()) for c, k in part.items()}
        counts = global_counts(keys, total, class_rank)
        more = unfinished(keys, counts, streams.partition.sizes)
        if not more:
            return counts
        for c in more:
            if c in streams.streams:
                streams.extend(c, max(1, 2 * len(keys[c])))


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
    allocation: str = "global",
    show_progress: bool = True,
) -> SelectionResult:
    """CLIPCov: pick round(fraction * N) image-caption pairs that preserve the cross-covariance.

    Per latent class (``labels``, or zero-shot against ``class_text_embeds`` when no labels are given):
    score_i = cross_i + 2 * easiness_i + label_i / 2 - penalty_i (similarities below ``threshold`` set
    to 0 in cross; ``None`` or <= -1 disables), then the batched greedy with diminishing returns
    (``hfdc.clipcov.greedy``) offers the class's members; ``allocation`` "global" ranks all classes in one
    list (the authors' notebook), "proportional" gives each class a quota by size. ``seed`` orders equal
    scores. The embeddings may be memory-mapped (``np.memmap``, h5py, zarr): under ``accelerate launch`` each
    process reads one contiguous range of rows and the rows of the classes it scores, and every process gets
    the merged result. The per-class work is many small ops: on a busy CPU one torch thread per process is
    fastest (``torch.set_num_threads(1)``; benchmarks/notes/clipcov_throughput.md).
    """
    image, text, class_text = check_embeddings(image_embeds, text_embeds, class_text_embeds)
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation must be one of {ALLOCATIONS}, got {allocation!r}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    size = image.shape[0]
    total = check_fraction(fraction, size)
    if threshold is not None and threshold <= -1:
        threshold = None  # cosines are >= -1: nothing would be zeroed, so use the factorised sums
    if labels is None:
        if class_text is None:
            raise ValueError(
                "pass labels= or class_text_embeds= (class-name prompt embeddings for zero-shot latent classes)"
            )
        num_classes = class_text.shape[0]
    else:
        labels, num_classes = check_labels(labels, size, None if class_text is None else class_text.shape[0])
    partition = pool_summary(image, text, labels, class_text, num_classes)
    rng = np.random.default_rng(seed)
    tiebreak, class_rank = rng.permutation(size), rng.permutation(num_classes)
    budgets = proportional_budgets(partition.sizes, total)
    streams = ClassStreams(
        image,
        text,
        partition,
        partition.owned_classes(*process_shard()),
        None if class_text is None else normalize(torch.from_numpy(class_text)),
        tiebreak,
        {"threshold": threshold, "block_size": block_size, "penalty": penalty},
    )
    first = budgets if allocation == "proportional" else {c: max(1, 2 * b) for c, b in budgets.items()}
    streams.start(first, show_progress)
    counts = allocate(streams, budgets, total, allocation, class_rank)
    mine = streams.selected(counts)
    parts = gather(
        {
            "rows": mine,
            "scored": np.concatenate([partition.members(c) for c in streams.scores] or [np.zeros(0, np.int64)]),
            "scores": np.concatenate([streams.scores[c] for c in streams.scores] or [np.zeros(0, np.float32)]),
            "covariance": cross_covariance_sum(image, text, mine),
        }
    )
    rows = np.sort(np.concatenate([p["rows"] for p in parts]))
    scores = np.full(size, np.nan, dtype=np.float32)
    for p in parts:
        scores[p["scored"]] = p["scores"]
    params = {
        "fraction": fraction,
        "threshold": threshold,
        "block_size": block_size,
        "penalty": penalty,
        "allocation": allocation,
        "seed": seed,
    }
    error = cross_covariance_error(sum(p["covariance"] for p in parts), len(rows), partition.pool_covariance, size)
    per_class = per_class_counts(partition.labels, rows, num_classes)
    return SelectionResult(rows, scores, per_class, partition.labels, "clipcov", params, error)


def per_class_counts(labels: np.ndarray | None, rows: np.ndarray, num_classes: int | None = None) -> dict[int, int]:
    """class id -> number of selected rows (every class listed, zeros included); {} without labels."""
    if labels is None:
        return {}
    counts = np.bincount(labels[rows], minlength=num_classes or int(labels.max()) + 1)
    return {int(c): int(n) for c, n in enumerate(counts)}
