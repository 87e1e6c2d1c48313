"""`hfdc colm --config recipe.yaml`: fine-tune a causal LM with ColmTrainer and save it with a card."""

from __future__ import annotations

import logging

from hfdc.colm.config import ColmConfig
from hfdc.colm.data import tokenize_mixture
from hfdc.colm.trainer import ColmTrainer, mean_selection_metrics
from hfdc.data import card_name, load
from hfdc.hub import push_model
from hfdc.models import load_causal_lm

logger = logging.getLogger(__name__)


def load_model(config: ColmConfig):
    """(model, tokenizer) for ``config.model_name_or_path``, wrapped with LoRA when ``lora_r`` > 0."""
    model, tokenizer = load_causal_lm(config.model_name_or_path, seed=config.seed, dtype=config.dtype)
    if config.lora_r > 0:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=list(config.lora_target_modules),
                task_type="CAUSAL_LM",
            ),
        )
    return model, tokenizer


def build_trainer(config: ColmConfig) -> ColmTrainer:
    """The ColmTrainer that ``run`` trains: model, tokenized train/validation splits."""
    model, tokenizer = load_model(config)
    data = load(config.dataset, **config.dataset_params)
    splits = {}
    for split, limit in (("train", config.max_train_samples), ("validation", config.max_eval_samples)):
        if split not in data:
            continue
        part = data[split].select(range(min(limit, len(data[split])))) if limit else data[split]
        splits[split] = tokenize_mixture(
            part, tokenizer, config.text_template, config.source_column, config.max_length, config.prompt_template
        )
    return ColmTrainer(
        model=model,
        args=config,
        train_dataset=splits["train"],
        eval_dataset=splits.get("validation"),
        processing_class=tokenizer,
    )


def run(config: ColmConfig):
    """Train, evaluate, and save the model + tokenizer with a card; returns the output folder."""
    trainer = build_trainer(config)
    trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    figures = {}
    if trainer.eval_dataset is not None:
        figures["final eval loss"] = round(trainer.evaluate()["eval_loss"], 4)
    selection = mean_selection_metrics(trainer.state.log_history)
    figures["mean selection time (s)"] = round(selection.get("colm/selection_time_s", float("nan")), 4)
    # diagnostics on CoLM's own (1-D with one direction) features, not on the true gradients
    figures["mean matching error on the features"] = round(selection.get("colm/matching_error", float("nan")), 4)
    figures["mean matching error on the features, random small batch"] = round(
        selection.get("colm/random_matching_error", float("nan")), 4
    )
    if not trainer.is_world_process_zero():
        return None
    trainer.processing_class.save_pretrained(config.output_dir)
    card = {
        "method": "colm",
        "paper": "Mini-batch Coresets for Memory-efficient Language Model Training on Data Mixtures",
        "arxiv": "2407.19580",
        "base_model": config.model_name_or_path,
        "datasets": [card_name(config.dataset)],
        "tags": ["coreset", "data-mixture", "causal-lm"],
        "description": (
            f"Fine-tuned with CoLM: each step trains on {config.per_device_train_batch_size} of "
            f"{config.large_batch_size} examples per device chosen by facility location on "
            "zeroth-order gradient features."
        ),
        "config": config,
        "figures": figures,
    }
    folder = push_model(trainer.model, repo_id=config.repo_id, output_dir=config.output_dir, card=card)
    logger.info("saved CoLM model to %s: %s", folder, figures)
    return folder
