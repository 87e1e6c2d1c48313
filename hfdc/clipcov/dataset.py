"""CLIPCov and its baselines as a ``datasets`` operation: rows in, ``SelectionResult`` out.

``result = select_dataset(ds, 0.1, model=clip, processor=processor)`` then ``ds.select(result.indices)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset

from hfdc.clipcov.baselines import BASELINES
from hfdc.clipcov.embed import clip_embeddings, embedding_arrays
from hfdc.clipcov.selection import SelectionResult, select
from hfdc.clipcov.train import class_text_embeddings

SELECTORS = {"clipcov": select, **BASELINES}
EMBEDDING_COLUMNS = ("image_embeds", "text_embeds")


def class_names_of(dataset: Dataset, label_column: str) -> list[str] | None:
    """The names of a ClassLabel column, or None when the column is missing or not a ClassLabel."""
    feature = dataset.features.get(label_column)
    return list(feature.names) if isinstance(feature, ClassLabel) else None


def select_dataset(
    dataset: Dataset,
    fraction: float,
    model=None,
    processor=None,
    method: str = "clipcov",
    image_column: str = "image",
    caption_column: str = "caption",
    label_column: str | None = None,
    class_names: list[str] | None = None,
    prompt_templates: tuple[str, ...] | list[str] = ("a photo of a {}.",),
    class_text_embeds=None,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    seed: int = 0,
    **method_kwargs,
) -> SelectionResult:
    """Select ``round(fraction * len(dataset))`` rows of an image-caption Dataset with ``method``.

    The rows are either precomputed embeddings (columns ``image_embeds`` and ``text_embeds``) or
    images and captions embedded by the proxy CLIP ``model``/``processor`` (batched, cached in
    ``cache_dir`` and then memory-mapped from there). Rows whose image does not decode are skipped and
    counted (``result.skipped``). Classes come from ``label_column`` or, without it, zero-shot against
    ``class_names`` x ``prompt_templates`` (or ``class_text_embeds``). ``method_kwargs`` go to the method.
    """
    if method not in SELECTORS:
        raise ValueError(f"method must be one of {sorted(SELECTORS)}, got {method!r}")
    if all(column in dataset.column_names for column in EMBEDDING_COLUMNS):
        columns = [c for c in (*EMBEDDING_COLUMNS, "decodable") if c in dataset.column_names]
        image, text, rows = embedding_arrays(dataset.select_columns(columns))
    else:
        if model is None or processor is None:
            raise ValueError(
                f"pass model= and processor= (a proxy CLIP) or a dataset with columns {EMBEDDING_COLUMNS}"
            )
        embeddings = clip_embeddings(dataset, model, processor, image_column, caption_column, batch_size, cache_dir)
        image, text, rows = embedding_arrays(embeddings, cache_dir)
    labels = None
    if label_column is not None:
        if label_column not in dataset.column_names:
            raise ValueError(f"label_column={label_column!r} is not a column; columns are {dataset.column_names}")
        labels = np.asarray(dataset[label_column])[rows]
    if class_text_embeds is None and class_names is not None:
        if model is None:
            raise ValueError("class_names need model= and processor= to embed the prompts; or pass class_text_embeds")
        class_text_embeds = class_text_embeddings(model, processor, class_names, list(prompt_templates)).numpy()
    result = SELECTORS[method](
        image, text, fraction, labels=labels, class_text_embeds=class_text_embeds, seed=seed, **method_kwargs
    )
    return result.on_pool(rows, len(dataset))
