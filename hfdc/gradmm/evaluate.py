"""Evaluating a synthetic set as GRADMM does: fine-tune the LM on it (Trainer; full or LoRA) and measure held-out
accuracy of the label word; the baselines are the same number of random real rows and the zero-shot LM.
Perplexity under the LM measures readability (GRADMM, arXiv 2502.17607, Sec. 5).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

from hfdc.gradmm.task import Task

IGNORE = -100


def classification_rows(dataset: Dataset, tokenizer, task: Task, text_column: str = "text") -> Dataset:
    """``input_ids`` = text + prompt + label word, ``labels`` = -100 except the label word (the only loss term)."""

    def encode(row):
        ids = task.encode(tokenizer, row[text_column])
        label = task.label_ids[row["label"]]
        return {"input_ids": ids + [label], "labels": [IGNORE] * len(ids) + [label]}

    return dataset.map(encode, remove_columns=dataset.column_names, desc="label-word rows")


def finetune(
    model, tokenizer, train: Dataset, task: Task, args: TrainingArguments, lora_r: int = 0, text_column="text"
):
    """``model`` (a LoRA wrapper of it when ``lora_r`` > 0) trained with Trainer on the label-word loss of ``train``."""
    if lora_r:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=2 * lora_r, task_type="CAUSAL_LM"))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=classification_rows(train, tokenizer, task, text_column),
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE),
    )
    trainer.train()
    return trainer.model


def padded_batches(sequences: list[list[int]], batch_size: int, device, pad_id: int = 0):
    """Right-padded (ids, attention mask, lengths) batches of ``sequences``."""
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start : start + batch_size]
        lengths = torch.tensor([len(s) for s in chunk])
        ids = torch.full((len(chunk), int(lengths.max())), pad_id, dtype=torch.long)
        for row, seq in enumerate(chunk):
            ids[row, : len(seq)] = torch.tensor(seq)
        mask = (torch.arange(ids.shape[1])[None] < lengths[:, None]).long()
        yield ids.to(device), mask.to(device), lengths.to(device)


@torch.no_grad()
def label_accuracy(model, tokenizer, dataset: Dataset, task: Task, text_column="text", batch_size=32) -> float:
    """Fraction of rows whose label word has the highest logit among the label words after text + prompt."""
    device = next(model.parameters()).device
    sequences = [task.encode(tokenizer, text) for text in dataset[text_column]]
    label_ids = torch.tensor(task.label_ids, device=device)
    predicted = []
    for ids, mask, lengths in padded_batches(sequences, batch_size, device):
        logits = model(input_ids=ids, attention_mask=mask).logits
        last = logits[torch.arange(len(ids), device=device), lengths - 1]
        predicted += last[:, label_ids].argmax(dim=-1).tolist()
    return float((torch.tensor(predicted) == torch.tensor(dataset["label"])).float().mean())


@torch.no_grad()
def perplexity(model, tokenizer, texts: list[str], batch_size: int = 32) -> float:
    """exp of the mean next-token loss over all tokens of ``texts`` (each tokenized on its own, special tokens on)."""
    device = next(model.parameters()).device
    sequences = [tokenizer(text)["input_ids"] for text in texts]
    total, count = 0.0, 0
    for ids, mask, _ in padded_batches(sequences, batch_size, device):
        log_probs = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float().log_softmax(-1)
        token_log_probs = log_probs.gather(-1, ids[:, 1:, None]).squeeze(-1)
        total -= (token_log_probs * mask[:, 1:]).sum().item()
        count += int(mask[:, 1:].sum())
    if count == 0:
        raise ValueError("perplexity needs texts of at least two tokens")
    return math.exp(total / count)


def as_text_label(dataset: Dataset, text_column: str, label_column: str) -> Dataset:
    """``dataset`` with only its text and label columns, named ``text`` and ``label``."""
    dataset = dataset.select_columns([text_column, label_column])
    renames = {old: new for old, new in ((text_column, "text"), (label_column, "label")) if old != new}
    return dataset.rename_columns(renames) if renames else dataset


def finetune_arguments(config, name: str) -> TrainingArguments:
    """TrainingArguments of one evaluation arm from the ``finetune_*`` fields of a GradmmConfig."""
    return TrainingArguments(
        output_dir=str(Path(config.output_dir) / "finetune" / name),
        num_train_epochs=config.finetune_epochs,
        learning_rate=config.finetune_learning_rate,
        per_device_train_batch_size=config.finetune_batch_size,
        seed=config.seed,
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
    )


def random_rows(dataset: Dataset, n: int, seed: int) -> Dataset:
    """``n`` rows of ``dataset`` drawn without replacement with seed (seed, 3), in their original order."""
    if n > len(dataset):
        raise ValueError(f"cannot draw {n} random rows from a data set of {len(dataset)}")
    return dataset.select(np.sort(np.random.default_rng([seed, 3]).choice(len(dataset), n, replace=False)))


def finetuned_accuracy(model, tokenizer, task: Task, train: Dataset, held_out: Dataset, config, name: str) -> float:
    """Held-out accuracy of a copy of ``model`` fine-tuned on ``train`` (``text``/``label`` columns) with the
    ``finetune_*`` fields of ``config``; ``name`` names the run's folder."""
    if len(train) == 0:
        raise ValueError(f"no {name} row to fine-tune on (did the filter remove every row? set filter=none)")
    args = finetune_arguments(config, name)
    tuned = finetune(copy.deepcopy(model), tokenizer, train, task, args, config.finetune_lora_r)
    return label_accuracy(tuned, tokenizer, held_out, task, batch_size=config.eval_batch_size)
