"""``hfdc clipcov``: proxy CLIP -> CLIPCov (or baseline) subset -> published subset -> CLIP trained on it.

CPU default: shapes with noisy captions; a tiny proxy CLIP is trained on the disjoint validation
split first (a random-weight proxy gives meaningless scores), saved with a model card, and used to
select from the train split; a fresh tiny CLIP trained on the subset is evaluated zero-shot on test.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
from transformers import CLIPModel, CLIPProcessor

import hfdc.data
from hfdc.clipcov.config import ClipCovConfig
from hfdc.clipcov.dataset import class_names_of, select_dataset
from hfdc.clipcov.train import prompt_name, train_clip, zero_shot_accuracy
from hfdc.data import card_name
from hfdc.distributed import process_state
from hfdc.hub import push_dataset, push_model

logger = logging.getLogger(__name__)

PAPER = "Data-Efficient Contrastive Language-Image Pretraining: Prioritizing Data Quality over Quantity"
ARXIV = "2403.12267"
MAX_CLASSES_IN_CARD = 50  # more classes: the card gets min / median / max, per_class_counts.json has all


def load_splits(config: ClipCovConfig):
    """(pool to select from, proxy training split or None, labelled evaluation split or None).

    All from ``hfdc.data.load(dataset, **dataset_params)`` (splits ``pool_split``, ``proxy_split`` without a
    ``proxy_model``, ``eval_split``), the evaluation data from ``eval_dataset`` when it is set.
    """
    from datasets import DatasetDict

    data = hfdc.data.load(config.dataset, **config.dataset_params)
    splits = data if isinstance(data, DatasetDict) else {config.pool_split: data}
    if config.pool_split not in splits:
        raise ValueError(f"dataset {config.dataset!r} has splits {sorted(splits)}; set pool_split to one of them")
    proxy = None
    if config.proxy_model is None:
        if config.proxy_split not in splits or config.proxy_split == config.pool_split:
            raise ValueError(
                f"dataset {config.dataset!r} has no split {config.proxy_split!r} apart from the pool to train a proxy "
                "on: set proxy_model= (a pretrained CLIP, e.g. openai/clip-vit-base-patch32) or proxy_split="
            )
        proxy = splits[config.proxy_split]
    if config.eval_dataset is None:
        evaluation = splits.get(config.eval_split)
    elif hfdc.data.is_embedded(config.eval_dataset):
        evaluation = hfdc.data.load(config.eval_dataset)[config.eval_split]
    else:
        evaluation = hfdc.data.load(config.eval_dataset, split=config.eval_split)
    return splits[config.pool_split], proxy, evaluation


def evaluate(model, processor, evaluation, class_names, config: ClipCovConfig) -> float | None:
    """Zero-shot accuracy on ``evaluation`` (rounded), computed on the main process only; None elsewhere."""
    if evaluation is None or not process_state().is_main_process:
        return None
    accuracy = zero_shot_accuracy(
        model, processor, evaluation, class_names, config.prompt_templates, config.image_column, config.label_column
    )
    return round(accuracy, 4)


def new_clip(name: str, seed: int):
    """A random-init CLIP and its processor: hfdc's tiny one, or one built from the config of ``name``."""
    if name == "tiny":
        import hfdc.models

        return hfdc.models.tiny("clip", seed=seed), hfdc.models.tiny_processor("clip")
    from transformers import CLIPConfig, set_seed

    set_seed(seed)
    return CLIPModel(CLIPConfig.from_pretrained(name)), CLIPProcessor.from_pretrained(name)


def stage_args(config: ClipCovConfig, output_dir: Path, epochs: float) -> ClipCovConfig:
    """The run's training arguments for one stage (proxy or subset), writing under ``output_dir``."""
    return dataclasses.replace(config, output_dir=str(output_dir), num_train_epochs=epochs)


def proxy_clip(config: ClipCovConfig, proxy_data, class_names, evaluation, out: Path):
    """(proxy model, processor, name): the pretrained ``proxy_model``, or a tiny CLIP trained on ``proxy_data``."""
    if config.proxy_model:
        model = CLIPModel.from_pretrained(config.proxy_model).to(process_state().device)
        return model, CLIPProcessor.from_pretrained(config.proxy_model), config.proxy_model
    model, processor = new_clip("tiny", config.seed)
    logger.info("training the proxy CLIP on %d rows of the disjoint %r split", len(proxy_data), config.proxy_split)
    train_clip(
        model,
        processor,
        proxy_data,
        stage_args(config, out / "proxy", config.proxy_epochs),
        config.image_column,
        config.caption_column,
    )
    folder = out / "proxy"
    accuracy = evaluate(model, processor, evaluation, class_names, config)
    if not process_state().is_main_process:
        return model, processor, str(folder)
    figures = {"proxy_training_rows": len(proxy_data)}
    if accuracy is not None:
        figures["zero_shot_accuracy"] = accuracy
    push_model(
        model,
        output_dir=folder,
        card={
            "method": "clipcov",
            "paper": PAPER,
            "arxiv": ARXIV,
            "datasets": [card_name(config.dataset)],
            "figures": figures,
            "description": f"Proxy CLIP trained contrastively on the '{config.proxy_split}' split (disjoint from the "
            "pool it scores) to embed images and captions for CLIPCov selection.",
            "config": config,
        },
    )
    processor.save_pretrained(folder)
    return model, processor, str(folder)


def named_counts(per_class: dict[int, int], class_names: list[str] | None) -> dict[str, int]:
    """Selected rows per class keyed by the class's prompt name ("tench"); "<name> (<id>)" where names repeat."""
    names = [prompt_name(n) for n in class_names or []]
    repeated = {n for n, k in Counter(names).items() if k > 1}
    return {
        (str(c) if c >= len(names) else f"{names[c]} ({c})" if names[c] in repeated else names[c]): n
        for c, n in per_class.items()
    }


def selection_card(config, result, subset, proxy_name, class_names) -> dict:
    """Dataset card: method, budget, proxy model, score statistics and per-class counts."""
    figures = {
        "budget_fraction": config.fraction,
        "selected_rows": len(result),
        "pool_rows": len(result.scores),
        "skipped_undecodable_images": result.skipped,
        "cross_covariance_error": round(result.cross_covariance_error, 6),
        **result.score_statistics(),
    }
    if "is_noisy" in subset.column_names:
        figures["noisy_caption_fraction_selected"] = round(float(np.mean(subset["is_noisy"])), 4)
    counts = named_counts(result.per_class, class_names)
    if len(counts) <= MAX_CLASSES_IN_CARD:
        figures.update({f"selected_in_class_{name}": n for name, n in counts.items()})
    elif counts:
        values = np.array(list(counts.values()))
        figures.update(
            {
                "classes": len(values),
                "selected_per_class_min": int(values.min()),
                "selected_per_class_median": float(np.median(values)),
                "selected_per_class_max": int(values.max()),
            }
        )
    return {
        "method": "clipcov",
        "paper": PAPER,
        "arxiv": ARXIV,
        "base_model": proxy_name,
        "datasets": [card_name(config.dataset)],
        "tags": ["subset-selection", "clip", config.method],
        "description": f"{len(result)} of {len(result.scores)} image-caption pairs selected with `{config.method}` "
        f"(budget {config.fraction:g}); column `{config.method}_score` holds each row's score.",
        "config": config,
        "figures": figures,
    }


def method_kwargs(config: ClipCovConfig) -> dict:
    """The config fields that the chosen selection method takes."""
    if config.method == "clipcov":
        return {
            "threshold": config.threshold,
            "block_size": config.block_size,
            "penalty": config.penalty,
            "allocation": config.allocation,
        }
    if config.method == "semdedup":
        return {"num_clusters": config.num_clusters}
    return {}


def run(config: ClipCovConfig) -> dict:
    """Select, publish and (optionally) train + evaluate; returns the metrics written to metrics.json."""
    out = Path(config.output_dir)
    pool, proxy_data, evaluation = load_splits(config)
    labelled = evaluation if evaluation is not None else pool
    class_names = config.class_names or class_names_of(labelled, config.label_column)
    if class_names is None and not config.use_labels:
        raise ValueError(
            "class_names are needed for latent classes (or set use_labels with a ClassLabel label_column)"
        )
    proxy, processor, proxy_name = proxy_clip(config, proxy_data, class_names, evaluation, out)
    result = select_dataset(
        pool,
        config.fraction,
        proxy,
        processor,
        config.method,
        config.image_column,
        config.caption_column,
        config.label_column if config.use_labels else None,
        class_names,
        config.prompt_templates,
        cache_dir=config.cache_dir or out / "embeddings",
        batch_size=config.embed_batch_size,
        seed=config.seed,
        **method_kwargs(config),
    )
    subset = pool.select(result.indices).add_column(
        f"{config.method}_score", result.scores[result.indices].astype(np.float32).tolist()
    )
    card = selection_card(config, result, subset, proxy_name, class_names)
    metrics = {"method": config.method, "fraction": config.fraction, "seed": config.seed, **card["figures"]}
    model = None
    if config.train_subset:
        model, model_processor = new_clip(config.model, config.seed)
        trainer = train_clip(
            model,
            model_processor,
            subset,
            stage_args(config, out / "model", config.num_train_epochs),
            config.image_column,
            config.caption_column,
        )
        metrics["train_loss"] = round(trainer.state.log_history[-1].get("train_loss", float("nan")), 4)
        accuracy = evaluate(model, model_processor, evaluation, class_names, config)
        if accuracy is not None:
            metrics["zero_shot_accuracy"] = accuracy
    if process_state().is_main_process:
        counts = named_counts(result.per_class, class_names)
        (out / "per_class_counts.json").write_text(json.dumps(counts, indent=2) + "\n")
        push_dataset(subset, repo_id=config.repo_id, output_dir=out / "subset", card=card)
        if model is not None:
            folder = push_model(
                model,
                output_dir=out / "model",
                card={
                    "method": "clipcov",
                    "paper": PAPER,
                    "arxiv": ARXIV,
                    "datasets": [card_name(config.dataset)],
                    "description": f"CLIP trained contrastively on the {config.method} subset "
                    f"({config.fraction:g} of the pool).",
                    "figures": {
                        k: metrics[k] for k in ("zero_shot_accuracy", "train_loss", "selected_rows") if k in metrics
                    },
                    "config": config,
                },
            )
            model_processor.save_pretrained(folder)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    logger.info("clipcov metrics: %s", metrics)
    return metrics
