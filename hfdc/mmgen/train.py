"""Fine-tune a vision-language model on MM-Gen records with trl's ``SFTTrainer`` (MM-Gen stage 4), full or LoRA.

The paper fine-tunes LLaVA-1.5 fully: learning rate 2e-5, cosine schedule, warm-up 0.03, 3 epochs (Joshi et al.,
"MM-GEN", arXiv 2501.04155, section 4). The loss is the answer tokens' cross-entropy (prompt-completion rows).
"""

from __future__ import annotations

import dataclasses

from datasets import Dataset
from transformers import TrainingArguments
from trl import SFTConfig, SFTTrainer

from hfdc.mmgen.vlm import sft_rows


def sft_config(args: TrainingArguments, max_length: int | None = None) -> SFTConfig:
    """An ``SFTConfig`` with the TrainingArguments fields of ``args`` (method fields of a subclass left out),
    completion-only loss, and ``max_length`` tokens (None: no truncation)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingArguments) if f.init}
    return SFTConfig(**values, max_length=max_length, completion_only_loss=True)


def train_sft(
    model,
    processor,
    records: Dataset,
    args: TrainingArguments,
    peft_config=None,
    max_length: int | None = None,
) -> SFTTrainer:
    """Train ``model`` in place on LLaVA ``records`` (or ready prompt-completion rows); returns the trainer.

    ``peft_config`` (e.g. ``peft.LoraConfig``) trains adapters instead of the full model; the trainer's
    ``model`` is then the ``PeftModel``. ``args.resume_from_checkpoint`` resumes from a Trainer checkpoint.
    """
    rows = records if "completion" in records.column_names else sft_rows(records)
    if len(rows) == 0:
        raise ValueError("no records to train on: the generation or the filter kept nothing")
    trainer = SFTTrainer(
        model=model,
        args=sft_config(args, max_length),
        train_dataset=rows,
        processing_class=processor,
        peft_config=peft_config,
    )
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    return trainer
