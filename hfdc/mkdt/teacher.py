"""Teacher representations: one vector per data-set row from any image encoder, batched and cached on disk.

Encoders: an hfdc classifier (its ``embed``: the backbone feature, no head; e.g. the BarlowTwins ResNet-18 of
MKDT, 512-d), a transformers vision model (its ``pooler_output``, images through its image processor), or any
torch module mapping [batch, channels, side, side] pixels in [-1, 1] to [batch, dim].
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from datasets import Dataset
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from hfdc.models.images import image_mode, pixel_values


def encode(encoder, images: torch.Tensor) -> torch.Tensor:
    """[batch, dim] representations of a pixel batch: ``embed`` of an hfdc classifier, the ``pooler_output`` of a
    transformers model, else the module's output."""
    if hasattr(encoder, "embed"):
        out = encoder.embed(images)
    else:
        out = encoder(pixel_values=images) if hasattr(encoder, "config") else encoder(images)
        if not isinstance(out, torch.Tensor):
            if getattr(out, "pooler_output", None) is None:
                raise ValueError(
                    f"{type(encoder).__name__} returns no pooler_output; wrap it in a torch module that returns "
                    "[batch, dim] representations"
                )
            out = out.pooler_output
    return out.flatten(1).float()


def fingerprint(encoder) -> str:
    """A digest of the encoder's class and weights (a retrained teacher never reuses stale representations)."""
    digest = hashlib.sha256(type(encoder).__qualname__.encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _cached(path: Path, key: str, rows: int) -> torch.Tensor | None:
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("key") != key or int(meta.get("rows", -1)) != rows:
            return None
        return f.get_tensor("representations")


@torch.no_grad()
def teacher_representations(
    encoder,
    dataset: Dataset,
    processor=None,
    image_column: str = "image",
    image_size: int | None = None,
    batch_size: int = 256,
    cache_file: str | Path | None = None,
) -> torch.Tensor:
    """A float32 tensor [len(dataset), dim]: row i is the encoder's representation of ``dataset`` row i.

    Images go through ``processor`` (a transformers image processor) when given, else through
    ``hfdc.models.images.pixel_values`` ([-1, 1], resized to ``image_size``). With ``cache_file`` the result is a
    safetensors file keyed by the data and encoder fingerprints: a second call with the same rows and weights
    loads it instead of encoding again.
    """
    if image_column not in dataset.column_names:
        raise ValueError(f"image_column={image_column!r} is not a column; columns are {dataset.column_names}")
    if len(dataset) == 0:
        raise ValueError("the data set has no rows to encode")
    key = json.dumps([dataset._fingerprint, fingerprint(encoder), image_column, image_size, repr(processor)])
    key = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache = Path(cache_file) if cache_file is not None else None
    if cache is not None and (hit := _cached(cache, key, len(dataset))) is not None:
        return hit
    was_training = encoder.training
    encoder.eval()
    mode = image_mode(dataset, image_column)
    device = next(iter(encoder.parameters()), torch.empty(0)).device
    column = dataset.select_columns([image_column])
    out = []
    for start in tqdm(range(0, len(dataset), batch_size), desc="teacher representations", leave=False):
        images = column[start : start + batch_size][image_column]
        if processor is not None:
            batch = processor(images=images, return_tensors="pt")["pixel_values"]
        else:
            batch = pixel_values(images, mode, image_size)
        out.append(encode(encoder, batch.to(device)).cpu())
    encoder.train(was_training)
    representations = torch.cat(out)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_file({"representations": representations}, str(cache), metadata={"key": key, "rows": str(len(dataset))})
    return representations
