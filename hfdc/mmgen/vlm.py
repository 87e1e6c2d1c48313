"""LLaVA records as trl prompt-completion rows, and per-example completion losses of a vision-language model.

One collation serves the filter, SFT and evaluation: trl's ``DataCollatorForVisionLanguageModeling`` with
``completion_only_loss`` (the chat template renders the prompt; only the answer's tokens are scored).
"""

from __future__ import annotations

import numpy as np
import torch
from datasets import Dataset, Features, Image, List, Value
from tqdm.auto import tqdm
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from hfdc.mmgen.task import conversation_pairs

MESSAGE = List({"role": Value("string"), "content": Value("string")})
SFT_FEATURES = Features({"images": List(Image()), "prompt": MESSAGE, "completion": MESSAGE})


def sft_row(image, question: str, answer: str) -> dict:
    """One prompt-completion row: the image, the user's question, the assistant's answer."""
    return {
        "images": [image],
        "prompt": [{"role": "user", "content": question}],
        "completion": [{"role": "assistant", "content": answer}],
    }


def sft_rows(records: Dataset) -> Dataset:
    """LLaVA records (image, conversations) -> prompt-completion rows, one per question-answer pair."""
    for column in ("image", "conversations"):
        if column not in records.column_names:
            raise ValueError(f"records need an {column!r} column (LLaVA format); columns are {records.column_names}")

    def expand(batch: dict) -> dict:
        rows = [
            sft_row(image, question, answer)
            for image, conversations in zip(batch["image"], batch["conversations"])
            for question, answer in conversation_pairs(conversations)
        ]
        return {key: [row[key] for row in rows] for key in SFT_FEATURES}

    return records.map(
        expand, batched=True, remove_columns=records.column_names, features=SFT_FEATURES, desc="SFT rows"
    )


def collator(processor) -> DataCollatorForVisionLanguageModeling:
    """trl's vision-language collator, scoring the completion only."""
    return DataCollatorForVisionLanguageModeling(processor=processor, completion_only_loss=True)


@torch.no_grad()
def completion_nll(model, processor, rows: list[dict], batch_size: int = 16, progress: bool = False) -> np.ndarray:
    """Per row: the negative log-likelihood of the completion's tokens, [len(rows), 2] = (sum, token count).

    Mean loss = sum / count (the SFT loss of the row); -sum is the completion's log-probability.
    """
    collate = collator(processor)
    model.eval()
    out = np.zeros((len(rows), 2))
    starts = range(0, len(rows), batch_size)
    for start in tqdm(starts, desc="completion losses", disable=not progress, leave=False):
        batch = collate([dict(row) for row in rows[start : start + batch_size]])
        labels = batch.pop("labels").to(model.device)
        inputs = {key: value.to(model.device) for key, value in batch.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        logits = model(**inputs).logits[:, :-1].float()
        targets = labels[:, 1:]
        mask = targets != -100
        nll = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), targets.clamp(min=0), reduction="none"
        ).masked_fill(~mask, 0.0)
        out[start : start + len(targets), 0] = nll.sum(1).double().cpu().numpy()
        out[start : start + len(targets), 1] = mask.sum(1).cpu().numpy()
    return out
