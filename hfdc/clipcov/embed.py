"""Proxy CLIP embeddings of image-caption rows, batched with progress and cached to disk.

Works with any ``transformers`` ``CLIPModel``-compatible model (``get_image_features`` /
``get_text_features``; in transformers 5.x they return an output whose ``pooler_output`` is the
projected embedding) and its processor. Embeddings are L2-normalised float32. An image that cannot be
decoded (a broken file in a web crawl) is skipped and counted: its row gets ``decodable=False``.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, Features, Image, List, Value, concatenate_datasets
from PIL import Image as PILImage

from hfdc.clipcov.checks import CHUNK_ROWS
from hfdc.clipcov.partition import row_range
from hfdc.clipcov.scores import normalize
from hfdc.distributed import process_state

logger = logging.getLogger(__name__)
DECODE_ERRORS = (OSError, ValueError, SyntaxError, PILImage.DecompressionBombError)


def undecoded(dataset: Dataset, column: str) -> Dataset:
    """``dataset`` with an Image ``column`` left as stored bytes / paths, so :func:`decode_images` can skip bad ones."""
    feature = dataset.features.get(column)
    return (
        dataset.cast_column(column, Image(mode=feature.mode, decode=False)) if isinstance(feature, Image) else dataset
    )


def decode_images(values: list, feature) -> tuple[list, np.ndarray]:
    """(the images that decode, a bool mask of which did) for a batch of undecoded Image values.

    ``feature`` is the column's ``datasets.Image`` (values that are already PIL images pass through).
    """
    images, ok = [], np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        if isinstance(value, PILImage.Image):
            images.append(value)
            ok[i] = True
            continue
        try:
            images.append(feature.decode_example(value))
            ok[i] = True
        except DECODE_ERRORS:
            pass
    return images, ok


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
    return normalize(torch.cat(out))


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
    return normalize(torch.cat(out)) if out else torch.zeros(0, model.config.projection_dim)


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
    """A Dataset with columns ``image_embeds``, ``text_embeds`` and ``decodable``, one row per row of ``dataset``.

    Computed with ``Dataset.map`` (batched, with a progress bar); with ``cache_dir`` the result is an
    Arrow file keyed by the data and model fingerprints, so a second call loads it instead of recomputing.
    Under ``accelerate launch`` (with ``cache_dir``) each process embeds one contiguous ``Dataset.shard``
    and then every process opens all shards from the cache (memory-mapped). A row whose image does not
    decode gets zero embeddings and ``decodable=False`` (the count is logged).
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
        embeddings = embed_rows(dataset, key, model, processor, image_column, caption_column, batch_size, cache_dir)
    else:
        from accelerate.utils import broadcast_object_list

        key = broadcast_object_list([key])[0]  # in-memory datasets get a random fingerprint in each process
        count = state.num_processes
        shards = [(dataset.shard(count, i, contiguous=True), f"{key}-shard{i}of{count}") for i in range(count)]
        embed_rows(*shards[state.process_index], model, processor, image_column, caption_column, batch_size, cache_dir)
        state.wait_for_everyone()
        embeddings = concatenate_datasets(
            [
                embed_rows(shard, shard_key, model, processor, image_column, caption_column, batch_size, cache_dir)
                for shard, shard_key in shards
            ]
        )
    skipped = len(embeddings) - int(np.count_nonzero(embeddings.with_format("numpy")["decodable"]))
    if skipped:
        logger.warning("%d of %d images could not be decoded; their rows are skipped", skipped, len(embeddings))
    return embeddings


def embed_rows(dataset, key: str, model, processor, image_column, caption_column, batch_size, cache_dir) -> Dataset:
    """``Dataset.map`` of the proxy over ``dataset``; cached under ``cache_dir`` as clip-embeddings-<hash(key)>."""
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache_file = None
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        cache_file = str(Path(cache_dir) / f"clip-embeddings-{fingerprint}.arrow")
    feature = dataset.features[image_column]
    dim = model.config.projection_dim

    def embed(batch, indices):
        captions = check_captions(batch[caption_column], caption_column, indices[0])
        images, ok = decode_images(batch[image_column], feature)
        image_embeds = np.zeros((len(ok), dim), dtype=np.float32)
        image_embeds[ok] = image_embeddings(model, processor, images, batch_size).numpy()
        return {
            "image_embeds": image_embeds,
            "text_embeds": text_embeddings(model, processor, captions, batch_size).numpy(),
            "decodable": ok,
        }

    features = Features(
        {
            "image_embeds": List(Value("float32")),
            "text_embeds": List(Value("float32")),
            "decodable": Value("bool"),
        }
    )
    return undecoded(dataset, image_column).map(
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


def embedding_arrays(embeddings: Dataset, folder: str | Path | None = None, chunk_rows: int = CHUNK_ROWS):
    """(image_embeds, text_embeds, rows): the decodable rows' embeddings [n, dim] float32 and their row indices
    (every row when there is no ``decodable`` column).

    With ``folder`` the arrays are written once to ``<fingerprint>-{image,text}_embeds.npy`` there (each process
    under ``accelerate launch`` writes its contiguous share of rows) and returned memory-mapped, so a process
    pages in only the rows it reads; without it they are read into memory.
    """
    decodable = embeddings.with_format("numpy")["decodable"] if "decodable" in embeddings.column_names else None
    rows = np.arange(len(embeddings)) if decodable is None else np.flatnonzero(decodable)
    columns = embeddings.select_columns(["image_embeds", "text_embeds"]).with_format("numpy")

    def read(start: int, stop: int) -> dict:
        block = columns[start:stop]
        keep = rows[(rows >= start) & (rows < stop)] - start
        return {name: np.asarray(block[name], dtype=np.float32)[keep] for name in block}

    if folder is None:
        arrays = read(0, len(embeddings))
        return arrays["image_embeds"], arrays["text_embeds"], rows
    state = process_state()
    dim = len(columns[0]["image_embeds"])
    paths = {name: Path(folder) / f"{embeddings._fingerprint}-{name}.npy" for name in ("image_embeds", "text_embeds")}
    done = Path(folder) / f"{embeddings._fingerprint}-embeds.done"
    if not done.exists():
        if state.is_main_process:
            for path in paths.values():
                np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(rows), dim))
        state.wait_for_everyone()
        share = row_range(len(embeddings), state.process_index, state.num_processes)
        arrays = {name: np.load(path, mmap_mode="r+") for name, path in paths.items()}
        for start in range(share.start, share.stop, chunk_rows):
            stop = min(share.stop, start + chunk_rows)
            first = np.searchsorted(rows, start)
            for name, block in read(start, stop).items():
                arrays[name][first : first + len(block)] = block
        for array in arrays.values():
            array.flush()
        state.wait_for_everyone()
        if state.is_main_process:
            done.touch()
    image, text = (np.load(paths[name], mmap_mode="r") for name in ("image_embeds", "text_embeds"))
    return image, text, rows
