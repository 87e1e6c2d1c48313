"""Contrastive CLIP training on (image, caption) rows with ``transformers.Trainer``, and zero-shot accuracy.

The CLIP loss is ``CLIPModel``'s own (``return_loss=True``): the symmetric InfoNCE over the batch's
image-caption similarity matrix (Radford et al. 2021).
"""

from __future__ import annotations

import numpy as np
import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from hfdc.clipcov.embed import check_captions, image_embeddings, text_embeddings


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


def class_text_embeddings(model, processor, class_names: list[str], templates: list[str]) -> torch.Tensor:
    """One L2-normalised text embedding per class: the mean over ``templates`` (each with "{}" for the
    class name, e.g. "a photo of a {}.") of the prompt embeddings, renormalised (CLIP prompt ensembling)."""
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(f"prompt_templates must be a non-empty list of strings containing '{{}}', got {templates!r}")
    prompts = [t.format(name) for name in class_names for t in templates]
    embeds = text_embeddings(model, processor, prompts).view(len(class_names), len(templates), -1).mean(1)
    return embeds / embeds.norm(dim=-1, keepdim=True).clamp_min(1e-12)


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
    """Fraction of ``dataset`` rows whose image is closest (cosine) to its own class's prompt embedding."""
    if label_column not in dataset.column_names:
        raise ValueError(
            f"label_column={label_column!r} is not a column of the evaluation data; columns are {dataset.column_names}"
        )
    prompts = class_text_embeddings(model, processor, class_names, templates)
    correct = 0
    for start in range(0, len(dataset), batch_size):
        batch = dataset[start : start + batch_size]
        images = image_embeddings(model, processor, batch[image_column], batch_size)
        correct += int(((images @ prompts.T).argmax(1).numpy() == np.asarray(batch[label_column])).sum())
    return correct / len(dataset)
