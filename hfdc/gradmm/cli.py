"""``hfdc gradmm --config recipe.yaml``: generate, filter, evaluate and save/push the synthetic set with its card."""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import NamedTuple

from datasets import Dataset, DatasetDict

from hfdc.data import card_name, load
from hfdc.distributed import process_state
from hfdc.gradmm.config import GradmmConfig
from hfdc.gradmm.evaluate import as_text_label, finetuned_accuracy, label_accuracy, perplexity, random_rows
from hfdc.gradmm.filtering import filter_synthetic
from hfdc.gradmm.generate import generate, real_subsets
from hfdc.gradmm.task import build_task
from hfdc.hub import push_dataset
from hfdc.models import load_causal_lm

logger = logging.getLogger(__name__)
PAPER = "Synthetic Text Generation for Training Large Language Models via Gradient Matching"


def load_model(config: GradmmConfig):
    """(causal LM on this process's device, tokenizer with a pad token) for ``model_name_or_path``."""
    model, tokenizer = load_causal_lm(config.model_name_or_path, seed=config.seed)
    return model.to(process_state().device), tokenizer


def split(data, name: str):
    """Split ``name`` of a DatasetDict (a lone Dataset is returned as is)."""
    if not isinstance(data, DatasetDict):
        return data
    if name not in data:
        raise ValueError(f"the data set has no split {name!r}; its splits are {list(data)}")
    return data[name]


class Synthesis(NamedTuple):
    """What :func:`synthesize` made: every generated row, the rows the filter kept, and the card's figures."""

    generated: Dataset
    kept: Dataset
    figures: dict


def synthesize(config: GradmmConfig) -> Synthesis:
    """Generate the synthetic set, filter it, measure perplexities and (with ``evaluate``) held-out accuracies."""
    model, tokenizer = load_model(config)
    data = load(config.dataset, **config.dataset_params)
    train = split(data, config.split)
    start = time.perf_counter()
    synthetic = generate(train, model, tokenizer, config)
    seconds = time.perf_counter() - start
    subsets = real_subsets(train, config, len(config.label_words))
    task = build_task(tokenizer, config.prompt, config.label_words)
    kept = synthetic
    if config.filter != "none":
        examples = [(text, c) for c, texts in subsets.items() for text in texts[: config.filter_shots]]
        kept = filter_synthetic(
            synthetic,
            model,
            tokenizer,
            mode=config.filter,
            label_words=config.label_words,
            instruction=config.filter_instruction,
            examples=examples,
            top_n=config.filter_top_n,
            batch_size=config.eval_batch_size,
        )
    group_losses = dict(zip(zip(synthetic["label"], synthetic["group"]), synthetic["group_matching_loss"]))
    real_texts = [text for texts in subsets.values() for text in texts]
    figures = {
        "model": config.model_name_or_path,
        "real examples used": len(real_texts),
        "real examples per class": ", ".join(f"{config.label_words[c].strip()}: {len(t)}" for c, t in subsets.items()),
        "rho": config.rho,
        "top-k": config.topk,
        "ADMM steps (outer x inner)": f"{config.admm_steps} x {config.admm_inner_steps}",
        "DP epsilon": config.dp_epsilon if config.dp else "off",
        "DP delta": config.dp_delta if config.dp else "off",
        "final matching loss (mean over groups)": round(statistics.mean(group_losses.values()), 4),
        "synthetic rows generated": len(synthetic),
        f"rows kept by the filter ({config.filter})": len(kept),
        "generation seconds per example (this run)": round(seconds / len(synthetic), 2),
        "perplexity of the synthetic texts": round(perplexity(model, tokenizer, synthetic["text"]), 2),
        "perplexity of the real texts used": round(perplexity(model, tokenizer, real_texts), 2),
    }
    if config.evaluate:
        held_out = as_text_label(split(data, config.eval_split), config.text_column, config.label_column)
        if config.max_eval_samples:
            held_out = held_out.shuffle(seed=config.seed).select(range(min(config.max_eval_samples, len(held_out))))
        real = random_rows(as_text_label(train, config.text_column, config.label_column), len(kept), config.seed)
        accuracy = {"zero_shot": label_accuracy(model, tokenizer, held_out, task, batch_size=config.eval_batch_size)}
        for name, rows in (("synthetic", kept), ("random_real", real)):
            accuracy[name] = finetuned_accuracy(model, tokenizer, task, rows, held_out, config, name)
        figures.update({f"held-out accuracy: {name}": round(value, 4) for name, value in accuracy.items()})
    logger.info("GRADMM figures: %s", figures)
    return Synthesis(synthetic, kept, figures)


def run(config: GradmmConfig) -> Path | None:
    """:func:`synthesize`; the main process saves the kept rows (and pushes them) with a card."""
    synthetic, kept, figures = synthesize(config)
    if not process_state().is_main_process:
        return None
    return push_dataset(
        kept,
        repo_id=config.repo_id,
        output_dir=Path(config.output_dir) / "dataset",
        card={
            "method": "gradmm",
            "paper": PAPER,
            "arxiv": "2502.17607",
            "tags": ["synthetic", "gradient-matching", "text-classification"],
            "base_model": config.model_name_or_path,
            "datasets": [card_name(config.dataset)],
            "pretty_name": f"GRADMM synthetic {Path(config.dataset).name}",
            "description": (
                f"{len(kept)} synthetic, human-readable examples ({config.synthetic_per_class} generated per class, "
                f"filter: {config.filter}) whose {config.gradient_parameters} gradient matches that of "
                f"{figures['real examples used']} real examples of `{config.dataset}` ({config.split}), found by ADMM over "
                "embeddings and readable tokens. Columns: text, label, matching_loss (the row's own gradient vs its "
                "class target, 1 - cos for cos), group_matching_loss (its optimisation group's), group"
                + (
                    ", label_probability (the filter's few-shot probability of the label)."
                    if config.filter != "none"
                    else "."
                )
            ),
            "config": config,
            "figures": figures,
        },
    )
