"""Baselines behind the ``hfdc.clipcov.select`` interface: random, CLIP-score filtering, SemDeDup.

Each takes ``(image_embeds, text_embeds, fraction, labels=None, class_text_embeds=None, seed=0)`` and
returns a :class:`~hfdc.clipcov.selection.SelectionResult` of round(fraction * N) rows.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from hfdc.clipcov.checks import CHUNK_ROWS, check_embeddings, check_finite, check_fraction, check_labels, read_rows
from hfdc.clipcov.covariance import cross_covariance_error, cross_covariance_sum
from hfdc.clipcov.greedy import ranked
from hfdc.clipcov.partition import latent_classes
from hfdc.clipcov.scores import normalize
from hfdc.clipcov.selection import SelectionResult, per_class_counts


def top_rows(scores: np.ndarray, total: int, seed: int) -> np.ndarray:
    """The ``total`` rows with the highest score, equal scores ordered by a seeded permutation; ascending."""
    tiebreak = np.random.default_rng(seed).permutation(len(scores))
    return np.sort(ranked(scores, tiebreak)[:total])


def checked(image_embeds, text_embeds, fraction, class_text_embeds):
    """(image, text, class_text, total budget), the embeddings read whole and checked for NaN / inf."""
    image, text, class_text = check_embeddings(image_embeds, text_embeds, class_text_embeds)
    total = check_fraction(fraction, image.shape[0])
    image, text = np.asarray(image[:]), np.asarray(text[:])
    check_finite(image, "image_embeds")
    check_finite(text, "text_embeds")
    return image, text, class_text, total


def finish(method, scores, rows, labels, image, text, class_text, params) -> SelectionResult:
    """The result, with per-class counts from ``labels`` or, failing those, zero-shot latent classes, and the
    subset's cross-covariance error."""
    if labels is not None:
        labels = check_labels(labels, len(scores), None if class_text is None else class_text.shape[0])[0]
    elif class_text is not None:
        labels = latent_classes(image, class_text)
    error = cross_covariance_error(
        cross_covariance_sum(image, text, rows), len(rows), cross_covariance_sum(image, text), len(scores)
    )
    return SelectionResult(rows, scores, per_class_counts(labels, rows), labels, method, params, error)


def random_subset(image_embeds, text_embeds, fraction, labels=None, class_text_embeds=None, seed=0) -> SelectionResult:
    """Uniformly random rows without replacement (score = the seeded random priority)."""
    image, text, class_text, total = checked(image_embeds, text_embeds, fraction, class_text_embeds)
    scores = np.random.default_rng(seed).random(image.shape[0]).astype(np.float32)
    rows = np.sort(np.argsort(-scores, kind="stable")[:total])
    return finish("random", scores, rows, labels, image, text, class_text, {"fraction": fraction, "seed": seed})


def clip_score(
    image_embeds, text_embeds, fraction, labels=None, class_text_embeds=None, seed=0, chunk_rows: int = CHUNK_ROWS
) -> SelectionResult:
    """CLIP-score filtering: the rows with the highest cos(img_i, cap_i) (Hessel et al. 2021; DataComp)."""
    image, text, class_text, total = checked(image_embeds, text_embeds, fraction, class_text_embeds)
    scores = np.empty(image.shape[0], dtype=np.float32)
    for start in range(0, image.shape[0], chunk_rows):
        rows = slice(start, start + chunk_rows)
        scores[rows] = (read_rows(image, rows) * read_rows(text, rows)).sum(1).numpy()
    return finish(
        "clip_score",
        scores,
        top_rows(scores, total, seed),
        labels,
        image,
        text,
        class_text,
        {"fraction": fraction, "seed": seed},
    )


def duplicate_scores(embeds: torch.Tensor, block_rows: int = 1024) -> torch.Tensor:
    """For row j of an ordered cluster: max_{i<j} cos(e_i, e_j) (-1 for the first row)."""
    n = embeds.shape[0]
    out = torch.full((n,), -1.0)
    for start in range(1, n, block_rows):
        stop = min(n, start + block_rows)
        sims = embeds[start:stop] @ embeds[:stop].T
        later = torch.arange(stop)[None, :] >= torch.arange(start, stop)[:, None]
        out[start:stop] = sims.masked_fill(later, -1.0).amax(1)
    return out


def semdedup(
    image_embeds, text_embeds, fraction, labels=None, class_text_embeds=None, seed=0, num_clusters: int | None = None
) -> SelectionResult:
    """SemDeDup (Abbas et al. 2023, arXiv 2303.09540): k-means on image embeddings; in each cluster,
    ordered from farthest to nearest the centroid, a row's duplicate score is its max cosine to any
    earlier row; drop rows above 1 - eps. Here eps is set by the budget: keep the ``round(fraction*N)``
    rows with the lowest duplicate score (score = -duplicate score). ``num_clusters`` defaults to sqrt(N).
    """
    from sklearn.cluster import KMeans

    image, text, class_text, total = checked(image_embeds, text_embeds, fraction, class_text_embeds)
    embeds = read_rows(image, slice(None))
    k = num_clusters or max(1, int(round(np.sqrt(image.shape[0]))))
    k = min(k, image.shape[0])
    kmeans = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(embeds.numpy())
    centroids = normalize(torch.from_numpy(kmeans.cluster_centers_))
    assignment = kmeans.labels_
    scores = np.empty(image.shape[0], dtype=np.float32)
    for c in tqdm(range(k), desc="semdedup clusters", leave=False):
        rows = np.flatnonzero(assignment == c)
        if len(rows) == 0:
            continue
        members = embeds[torch.from_numpy(rows)]
        order = np.argsort((members @ centroids[c]).numpy(), kind="stable")  # farthest first
        scores[rows[order]] = -duplicate_scores(members[torch.from_numpy(order)]).numpy()
    return finish(
        "semdedup",
        scores,
        top_rows(scores, total, seed),
        labels,
        image,
        text,
        class_text,
        {"fraction": fraction, "seed": seed, "num_clusters": k},
    )


BASELINES = {"random": random_subset, "clip_score": clip_score, "semdedup": semdedup}
