"""Partition images into keyword subgroups by CLIP zero-shot classification (MM-Gen stage 1).

subgroup(x) = argmax_k cos(f(x), t_k), with f the CLIP image embedding and t_k the keyword's text embedding
(the L2-normalised mean of its normalised prompt-template embeddings). Joshi et al., "MM-GEN", arXiv 2501.04155.
Any ``CLIPModel``-compatible model works (``get_image_features`` / ``get_text_features``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from datasets import Dataset, Image, Value

from hfdc.clipcov import image_embeddings, model_fingerprint, text_embeddings
from hfdc.mmgen.task import TaskSpec, decode_image

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATES = ("a photo of a {}.",)


def keyword_embeddings(model, processor, keywords: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES):
    """[len(keywords), dim] unit rows: per keyword, the normalised mean of its normalised template embeddings."""
    if not keywords:
        raise ValueError("keywords must name at least one subgroup")
    for template in templates:
        if "{}" not in template:
            raise ValueError(f"keyword template {template!r} must contain '{{}}' for the keyword")
    texts = [template.format(keyword) for keyword in keywords for template in templates]
    embeds = text_embeddings(model, processor, texts).reshape(len(keywords), len(templates), -1).mean(1)
    return embeds / embeds.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def partition(
    dataset: Dataset,
    keywords: Sequence[str],
    model,
    processor,
    image_column: str = "image",
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
) -> Dataset:
    """``dataset`` with a ``subgroup`` column: the keyword whose text embedding is closest (cosine) to the image's.

    An image that fails to decode gets ``subgroup = None`` (later stages skip and count it). With
    ``cache_dir`` the column is cached as an Arrow file keyed by the data, the model weights, the keywords and
    the templates, so a rerun reads it instead of embedding again.
    """
    if image_column not in dataset.column_names:
        raise ValueError(f"image_column={image_column!r} is not a column; columns are {dataset.column_names}")
    keywords = list(keywords)
    texts = keyword_embeddings(model, processor, keywords, templates)
    key = "|".join([dataset._fingerprint, model_fingerprint(model), image_column, *keywords, "||", *templates, "v1"])
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache_file = None
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        cache_file = str(Path(cache_dir) / f"partition-{fingerprint}.arrow")
    undecoded = dataset.cast_column(image_column, Image(decode=False))

    def assign(batch: dict) -> dict:
        images = [decode_image(value) for value in batch[image_column]]
        decoded = [i for i, image in enumerate(images) if image is not None]
        subgroups = [None] * len(images)
        if decoded:
            embeds = image_embeddings(model, processor, [images[i] for i in decoded], batch_size)
            for i, k in zip(decoded, (embeds @ texts.T).argmax(dim=1).tolist()):
                subgroups[i] = keywords[k]
        return {"subgroup": subgroups}

    features = undecoded.features.copy()
    features["subgroup"] = Value("string")
    result = undecoded.map(
        assign,
        batched=True,
        batch_size=batch_size,
        features=features,
        cache_file_name=cache_file,
        new_fingerprint=fingerprint,
        keep_in_memory=cache_file is None,
        desc="CLIP partition",
    )
    failed = sum(s is None for s in result["subgroup"])
    if failed:
        logger.warning("partition: %d of %d images could not be decoded (subgroup None)", failed, len(result))
    return result.cast_column(image_column, dataset.features[image_column])


def partition_task(task: TaskSpec, model, processor, **kwargs) -> TaskSpec:
    """``task`` with its reference and candidate sets partitioned (:func:`partition` with ``task.keywords``)."""
    reference = partition(task.reference, task.keywords, model, processor, **kwargs)
    candidates = partition(task.candidates, task.keywords, model, processor, **kwargs)
    return dataclasses.replace(task, reference=reference, candidates=candidates)


def subgroup_counts(dataset: Dataset, keywords: Sequence[str]) -> dict[str, int]:
    """Rows per keyword (every keyword listed, 0 included) of a partitioned data set."""
    values = np.array([s if s is not None else "" for s in dataset["subgroup"]], dtype=object)
    return {keyword: int((values == keyword).sum()) for keyword in keywords}
