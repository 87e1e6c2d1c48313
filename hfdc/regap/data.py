"""Image-caption rows -> LLaVA inputs: the prompt layouts, the stage-1 collator, images and captions by column.

Two layouts (``PROMPT_FORMATS``):

- ``plain``: LLaVA's stage-1 "plain" template: the tokenizer's begin-of-sequence token (when it has one), the
  image placeholder, a newline, the caption, end of sequence. The explicit BOS matters: without it (SmolLM2's
  tokenizer adds none) the LLM turns the first several image tokens into attention sinks with norms 100x the
  others, and the gap measures those;
- ``chat``: the processor's chat template, a user turn [image, ``instruction``] and the caption as the reply.

The loss covers the caption (and its end token) only: image placeholders, prompt and padding get label -100.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

PROMPT_FORMATS = ("plain", "chat")
IGNORE_INDEX = -100


def caption_text(value) -> str:
    """A caption from a string or from LLaVA's ``conversations`` list (the first "gpt" / "assistant" turn)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        for turn in value:
            if isinstance(turn, dict) and turn.get("from", turn.get("role")) in ("gpt", "assistant"):
                return str(turn.get("value", turn.get("content", "")))
    raise ValueError(
        f"a caption must be a string or a LLaVA conversations list with a 'gpt' turn, got {type(value).__name__}"
    )


def open_image(value, image_folder: str = "") -> Image.Image:
    """An RGB PIL image from a PIL image or a path (relative to ``image_folder`` when given)."""
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, (str, Path)):
        path = Path(image_folder) / value if image_folder else Path(value)
        if not path.is_file():
            raise ValueError(f"image file {str(path)!r} does not exist; set image_folder to the folder of the images")
        return Image.open(path).convert("RGB")
    raise ValueError(f"an image must be a PIL image or a file path, got {type(value).__name__}")


def prompt_text(processor, prompt_format: str, instruction: str = "", with_image: bool = True) -> str:
    """The text before the target (``prompt_format``: plain | chat, module docstring), with one image placeholder
    when ``with_image``."""
    if prompt_format == "plain":
        image = processor.image_token + "\n" if with_image else ""
        return (processor.tokenizer.bos_token or "") + image + (instruction + "\n" if instruction else "")
    if prompt_format != "chat":
        raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
    if not getattr(processor, "chat_template", None):
        raise ValueError("prompt_format='chat' needs a processor with a chat template; use prompt_format='plain'")
    content = ([{"type": "image"}] if with_image else []) + (
        [{"type": "text", "text": instruction}] if instruction else []
    )
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )


def encode_rows(
    processor,
    prompts: list[str],
    images: list[Image.Image] | None,
    targets: list[str],
    max_length: int = 512,
    append_eos: bool = True,
) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask``, ``labels`` (target tokens only) and ``pixel_values``.

    Row i is ``prompts[i]`` (already holding any special tokens; its image placeholder expanded by the processor
    for ``images[i]``; ``images=None`` for text only) followed by ``targets[i]`` and, when ``append_eos``, the tokenizer's end token. The target is
    cut so the row fits ``max_length``; the prompt (image placeholders included) never is.
    """
    if len(prompts) != len(targets) or (images is not None and len(images) != len(targets)):
        raise ValueError(
            f"{len(prompts)} prompts, {len(targets)} targets and {len(images or [])} images: give one of each per row"
        )
    tokenizer = processor.tokenizer
    end = tokenizer.eos_token if append_eos else ""
    rows, pixels = [], []
    for i, (prompt, target) in enumerate(zip(prompts, targets)):
        image = None if images is None else [images[i]]
        encoded = processor(text=prompt, images=image, add_special_tokens=False, return_tensors="pt")
        prompt_ids = encoded["input_ids"][0].tolist()
        room = max_length - len(prompt_ids)
        if room < 1:
            raise ValueError(
                f"max_length={max_length} leaves no room for the target after the {len(prompt_ids)} prompt tokens "
                "(image placeholders included); raise max_length"
            )
        target_ids = tokenizer(target + end, add_special_tokens=False)["input_ids"][:room]
        rows.append((prompt_ids + target_ids, [IGNORE_INDEX] * len(prompt_ids) + target_ids))
        if image is not None:
            pixels.append(encoded["pixel_values"][0])
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch = {
        "input_ids": torch.full((len(rows), width), pad, dtype=torch.long),
        "attention_mask": torch.zeros((len(rows), width), dtype=torch.long),
        "labels": torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long),
    }
    for i, (ids, labels) in enumerate(rows):
        batch["input_ids"][i, : len(ids)] = torch.tensor(ids)
        batch["labels"][i, : len(ids)] = torch.tensor(labels)
        batch["attention_mask"][i, : len(ids)] = 1
    if pixels:
        batch["pixel_values"] = torch.stack(pixels)
    return batch


def encode_pairs(
    processor,
    images: list[Image.Image],
    targets: list[str],
    prompt_format: str = "plain",
    instruction: str = "",
    max_length: int = 512,
) -> dict[str, torch.Tensor]:
    """:func:`encode_rows` for image-caption pairs: every row has the same prompt (``prompt_format``, with
    ``instruction``) and its own image; the caption is the target."""
    prompt = prompt_text(processor, prompt_format, instruction)
    return encode_rows(processor, [prompt] * len(targets), images, targets, max_length)


def split_of(data, split: str):
    """``data[split]`` for a DatasetDict (ValueError listing the splits when missing), ``data`` for a Dataset."""
    if not hasattr(data, "keys"):
        return data
    if split not in data:
        raise ValueError(f"the data set has no split {split!r}; its splits are {list(data)}")
    return data[split]


def caption_pairs(
    dataset, n: int, image_column: str = "image", caption_column: str = "caption", image_folder: str = ""
) -> list[tuple[Image.Image, str]]:
    """The first ``n`` rows of ``dataset`` as (image, caption) pairs, e.g. for ``measure_gap``."""
    for column in (image_column, caption_column):
        if column not in dataset.column_names:
            raise ValueError(f"column {column!r} is not in the data set; its columns are {dataset.column_names}")
    if n < 2:
        raise ValueError(f"the gap needs at least 2 pairs, got gap_pairs={n}")
    rows = dataset.select(range(min(n, len(dataset))))
    return [
        (open_image(image, image_folder), caption_text(caption))
        for image, caption in zip(rows[image_column], rows[caption_column])
    ]


@dataclass
class Stage1Collator:
    """Rows with an image (PIL or path) and a caption (text or LLaVA conversations) -> :func:`encode_pairs`."""

    processor: object
    image_column: str = "image"
    caption_column: str = "caption"
    prompt_format: str = "plain"
    instruction: str = ""
    max_length: int = 512
    image_folder: str = ""

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        for column in (self.image_column, self.caption_column):
            if column not in rows[0]:
                raise ValueError(f"column {column!r} is missing from the training rows; they have {sorted(rows[0])}")
        return encode_pairs(
            self.processor,
            [open_image(row[self.image_column], self.image_folder) for row in rows],
            [caption_text(row[self.caption_column]) for row in rows],
            self.prompt_format,
            self.instruction,
            self.max_length,
        )


__all__ = [
    "IGNORE_INDEX",
    "PROMPT_FORMATS",
    "Stage1Collator",
    "caption_pairs",
    "caption_text",
    "encode_pairs",
    "encode_rows",
    "open_image",
    "prompt_text",
    "split_of",
]
