"""CLIPCov per-example scores: cross + 2 * easiness + label / 2 - cross-class penalty.

Joshi, Jain, Payani, Mirzasoleiman, "Data-Efficient Contrastive Language-Image Pretraining:
Prioritizing Data Quality over Quantity", AISTATS 2024, arXiv 2403.12267.

Everything here works on one latent class at a time: no matrix is larger than
``class size x class size`` (and that one is built in row blocks of at most ``block_elements``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

PENALTIES = ("max", "mean")


class ClassScores(NamedTuple):
    """The scores of one class's members and the two terms the greedy deducts class-wide after each block."""

    total: torch.Tensor  # cross + 2 * easiness + label / 2 - penalty
    cross: torch.Tensor
    label: torch.Tensor


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm, in float32 (zero rows stay zero)."""
    x = x.to(torch.float32)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def thresholded_(similarity: torch.Tensor, threshold: float | None) -> torch.Tensor:
    """In place: similarities below ``threshold`` set to 0 (``None`` keeps them all)."""
    if threshold == 0:
        return similarity.clamp_min_(0.0)
    if threshold is not None:
        similarity.masked_fill_(similarity < threshold, 0.0)
    return similarity


def row_and_column_sums(
    a: torch.Tensor, b: torch.Tensor, threshold: float | None, block_elements: int = 1 << 22
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column sums of thr(a @ b.T), built in row blocks of at most ``block_elements`` entries.

    Without a threshold the sums factorise: rows a . sum(b), columns b . sum(a).
    """
    if threshold is None:
        return a @ b.sum(0), b @ a.sum(0)
    rows = torch.empty(a.shape[0])
    columns = torch.zeros(b.shape[0])
    step = max(1, block_elements // max(1, b.shape[0]))
    for start in range(0, a.shape[0], step):
        block = thresholded_(a[start : start + step] @ b.T, threshold)
        rows[start : start + step] = block.sum(1)
        columns += block.sum(0)
    return rows, columns


def pair_similarity_sums(
    image: torch.Tensor, text: torch.Tensor, image_to: torch.Tensor, text_to: torch.Tensor, threshold: float | None
) -> torch.Tensor:
    """For every row j of ``image``/``text``: sum over pairs b of thr(img_j . txt_b) + thr(img_b . txt_j)."""
    image_text, _ = row_and_column_sums(image, text_to, threshold)
    _, text_image = row_and_column_sums(image_to, text, threshold)
    return image_text + text_image


def cross_term(image: torch.Tensor, text: torch.Tensor, threshold: float | None) -> torch.Tensor:
    """cross_i = (1/|c|) sum_{j in c} [thr(img_i . txt_j) + thr(txt_i . img_j)], over the class's pairs.

    Normalised by the class size as in the authors' notebook, so it is on the scale of a cosine.
    """
    rows, columns = row_and_column_sums(image, text, threshold)  # one class x class product, in blocks
    return (rows + columns) / image.shape[0]


def penalty_term(
    image: torch.Tensor,
    text: torch.Tensor,
    class_id: int,
    image_centroids: torch.Tensor,
    text_centroids: torch.Tensor,
    present: torch.Tensor,
    reduction: str,
) -> torch.Tensor:
    """penalty_i = cos(img_i, caption centroid of c') + cos(cap_i, image centroid of c'), over other classes c'.

    ``reduction`` "max" takes the most confusable other class, "mean" averages over them (the sum scaled
    by 1/(number of other classes), which keeps the term on the scale of a cosine). Classes that are
    not ``present`` (no members; their centroid rows are zero) are skipped; with no other class the penalty is 0.
    """
    count = int(present.sum()) - int(present[class_id])
    if count == 0:
        return torch.zeros(image.shape[0])
    if reduction == "mean":
        other_text = text_centroids.sum(0) - text_centroids[class_id]
        other_image = image_centroids.sum(0) - image_centroids[class_id]
        return (image @ other_text + text @ other_image) / count
    if reduction == "max":
        skip = ~present
        skip[class_id] = True
        image_text = (image @ text_centroids.T).masked_fill_(skip, -torch.inf).amax(1)
        text_image = (text @ image_centroids.T).masked_fill_(skip, -torch.inf).amax(1)
        return image_text + text_image
    raise ValueError(f"penalty must be one of {PENALTIES}, got {reduction!r}")


def class_scores(
    image: torch.Tensor,
    text: torch.Tensor,
    class_id: int,
    image_centroids: torch.Tensor,
    text_centroids: torch.Tensor,
    present: torch.Tensor,
    class_text: torch.Tensor | None = None,
    threshold: float | None = 0.0,
    penalty: str = "max",
) -> ClassScores:
    """score_i = cross_i + 2 * easiness_i + label_i / 2 - penalty_i for the members of one class.

    ``image``/``text`` are the class's L2-normalised embeddings; easiness_i = cos(img_i, cap_i);
    label_i = cos(cap_i, class_text) (0 when no class text embedding is given).
    """
    if image.shape[0] == 0:
        raise ValueError(f"class {class_id} has no examples; drop it from the labels / class_text_embeds")
    easiness = (image * text).sum(1)
    label = text @ class_text if class_text is not None else torch.zeros_like(easiness)
    cross = cross_term(image, text, threshold)
    penalty_ = penalty_term(image, text, class_id, image_centroids, text_centroids, present, penalty)
    return ClassScores(cross + 2 * easiness + label / 2 - penalty_, cross, label)
