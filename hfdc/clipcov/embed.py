"""Proxy CLIP embeddings of image-caption rows, batched with progress and cached to disk.

Works with any ``transformers`` ``CLIPModel``-compatible model (``get_image_features`` /
``get_text_features``; in transformers 5.x they return an output whose ``pooler_output`` is the
projected embedding) and its processor. Embeddings are L2-normalised float32.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, Features, List, Value, concatenate_datasets

from hfdc.distributed import process_state


def projected(output) -> torch.Tensor:
    """The projected embedding from ``get_*_features``: a tensor, or an output's ``pooler_output``."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def check_captions(captions, column: str, offset: int = 0) -> list[str]:
    """The captions as strings; a ValueError naming the first missing (None / empty) one."""
    for i, caption in enumerate(captions):
        if not isinstance(caption, str) or not caption.strip():
            raise ValueError(
                f"caption missing in column {column!r} at row {offset + i} ({caption!r}); "
                "fill or filter those rows before selecting"
            )
    return list(captions)


@torch.no_grad()
def text_embeddings(model, processor, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    """L2-normalised projected text embeddings [len(texts), dim]."""
    tokenizer = getattr(processor, "tokenizer", processor)
    model.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, return_tensors="pt")
        tokens = {k: v.to(model.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        out.append(projected(model.get_text_features(**tokens)).float().cpu())
    embeds = torch.cat(out)
    return embeds / embeds.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def image_embeddings(model, processor, images: list, batch_size: int = 256) -> torch.Tensor:
    """L2-normalised projected image embeddings [len(images), dim]."""
    image_processor = getattr(processor, "image_processor", processor)
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        pixels = image_processor(images=images[start : start + batch_size], return_tensors="pt")["pixel_values"]
        out.append(
            projected(model.get_image_features(pixel_values=pixels.to(model.device, model.dtype))).float().cpu()
        )
    embeds = torch.cat(out)
    return embeds / embeds.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def model_fingerprint(model) -> str:
    """A digest of the model's config and weights (so a retrained proxy never reuses stale embeddings)."""
    digest = hashlib.sha256(model.config.to_json_string().encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def clip_embeddings(
    dataset: Dataset,
    model,
    processor,
    image_column: str = "image",
    caption_column: str = "caption",
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
) -> Dataset:
    """A Dataset with columns ``image_embeds`` and ``text_embeds``, one row per row of ``dataset``.

    Computed with ``Dataset.map`` (batched, with a progress bar); with ``cache_dir`` the result is an
    Arrow file keyed by the data and model fingerprints, so a second call loads it instead of recomputing.
    Under ``accelerate launch`` (with ``cache_dir``) each process embeds one contiguous ``Dataset.shard``
    and then every process reads all shards from the cache.
    """
    for role, column in (("image_column", image_column), ("caption_column", caption_column)):
        if column not in dataset.column_names:
            what = "captions missing: " if role == "caption_column" else ""
            raise ValueError(
                f"{what}{role}={column!r} is not a column of the dataset; columns are {dataset.column_names}"
            )
    state = process_state()
    key = f"{dataset._fingerprint}-{model_fingerprint(model)}-{image_column}-{caption_column}"
    if state.num_processes == 1 or cache_dir is None:
        return embed_rows(dataset, key, model, processor, image_column, caption_column, batch_size, cache_dir)
    from accelerate.utils import broadcast_object_list

    key = broadcast_object_list([key])[0]  # in-memory datasets get a random fingerprint in each process
    count = state.num_processes
    shards = [(dataset.shard(count, i, contiguous=True), f"{key}-shard{i}of{count}") for i in range(count)]
    embed_rows(*shards[state.process_index], model, processor, image_column, caption_column, batch_size, cache_dir)
    state.wait_for_everyone()
    return concatenate_datasets(
        [
            embed_rows(shard, shard_key, model, processor, image_column, caption_column, batch_size, cache_dir)
            for shard, shard_key in shards
        ]
    )


def embed_rows(dataset, key: str, model, processor, image_column, caption_column, batch_size, cache_dir) -> Dataset:
    """``Dataset.map`` of the proxy over ``dataset``; cached under ``cache_dir`` as clip-embeddings-<hash(key)>."""
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache_file = None
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        cache_file = str(Path(cache_dir) / f"clip-embeddings-{fingerprint}.arrow")

    def embed(batch, indices):
        captions = check_captions(batch[caption_column], caption_column, indices[0])
        return {
            "image_embeds": image_embeddings(model, processor, batch[image_column], batch_size).numpy(),
            "text_embeds": text_embeddings(model, processor, captions, batch_size).numpy(),
        }

    features = Features({"image_embeds": List(Value("float32")), "text_embeds": List(Value("float32"))})
    return dataset.map(
        embed,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        remove_columns=dataset.column_names,
        features=features,
        cache_file_name=cache_file,
        new_fingerprint=fingerprint,
        keep_in_memory=cache_file is None,
        desc="proxy CLIP embeddings",
    )


def embedding_arrays(embeddings: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(image_embeds, text_embeds) as float32 arrays [rows, dim]."""
    arrays = embeddings.with_format("numpy")
    return np.asarray(arrays["image_embeds"], dtype=np.float32), np.asarray(arrays["text_embeds"], dtype=np.float32)
