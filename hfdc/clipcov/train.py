"""Contrastive CLIP training on (image, caption) rows with ``transformers.Trainer``, and zero-shot accuracy.

The CLIP loss is ``CLIPModel``'s own (``return_loss=True``): the symmetric InfoNCE over the batch's
image-caption similarity matrix (Radford et al. 2021).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from hfdc.clipcov.embed import check_captions, decode_images, image_embeddings, text_embeddings, undecoded
from hfdc.clipcov.scores import normalize

logger = logging.getLogger(__name__)


class ImageCaptionCollator:
    """Rows with an image and a caption -> ``CLIPModel`` inputs with ``return_loss=True``."""

    def __init__(self, processor, image_column: str = "image", caption_column: str = "caption"):
        self.tokenizer = processor.tokenizer
        self.image_processor = processor.image_processor
        self.image_column, self.caption_column = image_column, caption_column

    def __call__(self, rows: list[dict]) -> dict:
        captions = check_captions([row[self.caption_column] for row in rows], self.caption_column)
        tokens = self.tokenizer(captions, padding=True, truncation=True, return_tensors="pt")
        pixels = self.image_processor(images=[row[self.image_column] for row in rows], return_tensors="pt")
        return {
            "pixel_values": pixels["pixel_values"],
            "input_ids": tokens["input_ids"],
            "attention_mask": tokens["attention_mask"],
            "return_loss": True,
        }


def train_clip(
    model,
    processor,
    dataset: Dataset,
    args: TrainingArguments,
    image_column: str = "image",
    caption_column: str = "caption",
) -> Trainer:
    """Train ``model`` contrastively on ``dataset`` with ``Trainer``; returns the trainer after training.

    ``args.remove_unused_columns`` must be False (the collator needs the raw image and caption columns).
    """
    for role, column in (("image_column", image_column), ("caption_column", caption_column)):
        if column not in dataset.column_names:
            raise ValueError(
                f"{role}={column!r} is not a column of the training data; columns are {dataset.column_names}"
            )
    if args.remove_unused_columns:
        raise ValueError("set remove_unused_columns=False: the collator reads the image and caption columns")
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=ImageCaptionCollator(processor, image_column, caption_column),
    )
    trainer.train()
    return trainer


def prompt_name(class_name: str) -> str:
    """The name a prompt uses: the first synonym, underscores as spaces ("tench, Tinca tinca" -> "tench";
    "great_white_shark" -> "great white shark"), as in ImageNet's WordNet class names."""
    return " ".join(class_name.split(",")[0].replace("_", " ").split())


def class_text_embeddings(model, processor, class_names: list[str], templates: list[str]) -> torch.Tensor:
    """One L2-normalised text embedding per class: the mean over ``templates`` (each with "{}" for the
    class name, e.g. "a photo of a {}.") of the prompt embeddings, renormalised (CLIP prompt ensembling).

    Class names are cleaned with :func:`prompt_name` first."""
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(f"prompt_templates must be a non-empty list of strings containing '{{}}', got {templates!r}")
    prompts = [t.format(prompt_name(name)) for name in class_names for t in templates]
    return normalize(text_embeddings(model, processor, prompts).view(len(class_names), len(templates), -1).mean(1))


@torch.no_grad()
def zero_shot_accuracy(
    model,
    processor,
    dataset: Dataset,
    class_names: list[str],
    templates: list[str],
    image_column: str = "image",
    label_column: str = "label",
    batch_size: int = 256,
) -> float:
    """Fraction of ``dataset`` rows whose image is closest (cosine) to its own class's prompt embedding.

    Rows whose image does not decode are left out of the fraction (their count is logged).
    """
    if label_column not in dataset.column_names:
        raise ValueError(
            f"label_column={label_column!r} is not a column of the evaluation data; columns are {dataset.column_names}"
        )
    prompts = class_text_embeddings(model, processor, class_names, templates)
    feature = dataset.features[image_column]
    rows = undecoded(dataset, image_column)
    correct = decoded = 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        images, ok = decode_images(batch[image_column], feature)
        predicted = (image_embeddings(model, processor, images, batch_size) @ prompts.T).argmax(1).numpy()
        correct += int((predicted == np.asarray(batch[label_column])[ok]).sum())
        decoded += len(images)
    if decoded < len(rows):
        logger.warning("zero-shot evaluation: %d of %d images could not be decoded", len(rows) - decoded, len(rows))
    if decoded == 0:
        raise ValueError(f"no image of column {image_column!r} in the evaluation data could be decoded")
    return correct / decoded
