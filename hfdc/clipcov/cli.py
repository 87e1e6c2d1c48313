"""``hfdc clipcov``: proxy CLIP -> CLIPCov (or baseline) subset -> published subset -> CLIP trained on it.

CPU default: shapes with noisy captions; a tiny proxy CLIP is trained on the disjoint validation
split first (a random-weight proxy gives meaningless scores), saved with a model card, and used to
select from the train split; a fresh tiny CLIP trained on the subset is evaluated zero-shot on test.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
from transformers import CLIPModel, CLIPProcessor

from hfdc.clipcov.config import ClipCovConfig
from hfdc.clipcov.dataset import class_names_of, select_dataset
from hfdc.clipcov.train import train_clip, zero_shot_accuracy
from hfdc.distributed import process_state
from hfdc.hub import push_dataset, push_model

logger = logging.getLogger(__name__)

PAPER = "Data-Efficient Contrastive Language-Image Pretraining: Prioritizing Data Quality over Quantity"
ARXIV = "2403.12267"
MAX_CLASSES_IN_CARD = 50  # more classes: the card gets min / median / max, per_class_counts.json has all


def load_splits(config: ClipCovConfig):
    """(pool to select from, proxy training split or None, labelled evaluation split or None)."""
    import datasets

    if config.data != "shapes" and config.proxy_model is None:
        raise ValueError(
            f"data={config.data!r} needs proxy_model= (a pretrained CLIP, e.g. openai/clip-vit-base-patch32)"
        )
    if config.data == "shapes":
        import hfdc.data

        splits = hfdc.data.load(
            "shapes",
            n_train=config.n_train,
            n_validation=config.n_validation,
            n_test=config.n_test,
            noise_fraction=config.noise_fraction,
            seed=config.data_seed,
        )
        proxy = None if config.proxy_model else splits[config.proxy_split]
        return splits["train"], proxy, splits["test"]
    pool = datasets.load_dataset(config.data, data_files=config.data_files, split=config.data_split)
    evaluation = datasets.load_dataset(config.eval_data, split=config.eval_split) if config.eval_data else None
    return pool, None, evaluation


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
    figures = {"proxy_training_rows": len(proxy_data)}
    if evaluation is not None:
        figures["zero_shot_accuracy"] = round(
            zero_shot_accuracy(
                model,
                processor,
                evaluation,
                class_names,
                config.prompt_templates,
                config.image_column,
                config.label_column,
            ),
            4,
        )
    folder = out / "proxy"
    if not process_state().is_main_process:
        return model, processor, str(folder)
    push_model(
        model,
        output_dir=folder,
        card={
            "method": "clipcov",
            "paper": PAPER,
            "arxiv": ARXIV,
            "datasets": [config.data],
            "figures": figures,
            "description": f"Proxy CLIP trained contrastively on the '{config.proxy_split}' split (disjoint from the "
            "pool it scores) to embed images and captions for CLIPCov selection.",
            "config": {
                "proxy_epochs": config.proxy_epochs,
                "caption_column": config.caption_column,
                "seed": config.seed,
            },
        },
    )
    processor.save_pretrained(folder)
    return model, processor, str(folder)


def selection_card(config, result, subset, proxy_name, class_names) -> dict:
    """Dataset card: method, budget, proxy model, score statistics and per-class counts."""
    figures = {
        "budget_fraction": config.fraction,
        "selected_rows": len(result),
        "pool_rows": len(result.scores),
        **result.score_statistics(),
    }
    if "is_noisy" in subset.column_names:
        figures["noisy_caption_fraction_selected"] = round(float(np.mean(subset["is_noisy"])), 4)
    names = class_names or []
    counts = {names[c] if c < len(names) else str(c): n for c, n in result.per_class.items()}
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
        "datasets": [config.data],
        "tags": ["subset-selection", "clip", config.method],
        "description": f"{len(result)} of {len(result.scores)} image-caption pairs selected with `{config.method}` "
        f"(budget {config.fraction:g}); column `{config.method}_score` holds each row's score.",
        "config": {
            k: getattr(config, k)
            for k in (
                "method",
                "fraction",
                "threshold",
                "block_size",
                "penalty",
                "use_labels",
                "prompt_templates",
                "seed",
                "caption_column",
            )
        },
        "figures": figures,
    }


def method_kwargs(config: ClipCovConfig) -> dict:
    """The config fields that the chosen selection method takes."""
    if config.method == "clipcov":
        return {"threshold": config.threshold, "block_size": config.block_size, "penalty": config.penalty}
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
        if evaluation is not None:
            metrics["zero_shot_accuracy"] = round(
                zero_shot_accuracy(
                    model,
                    model_processor,
                    evaluation,
                    class_names,
                    config.prompt_templates,
                    config.image_column,
                    config.label_column,
                ),
                4,
            )
    if process_state().is_main_process:
        (out / "per_class_counts.json").write_text(
            json.dumps(
                {
                    (class_names[c] if class_names and c < len(class_names) else str(c)): n
                    for c, n in result.per_class.items()
                },
                indent=2,
            )
            + "\n"
        )
        push_dataset(subset, repo_id=config.repo_id, output_dir=out / "subset", card=card)
        if model is not None:
            folder = push_model(
                model,
                output_dir=out / "model",
                card={
                    "method": "clipcov",
                    "paper": PAPER,
                    "arxiv": ARXIV,
                    "datasets": [config.data],
                    "description": f"CLIP trained contrastively on the {config.method} subset "
                    f"({config.fraction:g} of the pool).",
                    "figures": {
                        k: metrics[k] for k in ("zero_shot_accuracy", "train_loss", "selected_rows") if k in metrics
                    },
                    "config": {
                        "method": config.method,
                        "fraction": config.fraction,
                        "epochs": config.num_train_epochs,
                        "learning_rate": config.learning_rate,
                        "seed": config.seed,
                    },
                },
            )
            model_processor.save_pretrained(folder)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    logger.info("clipcov metrics: %s", metrics)
    return metrics
