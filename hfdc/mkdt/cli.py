"""``hfdc mkdt teacher|experts|distill|evaluate|all``: the MKDT stages, each reading what the previous one wrote.

Under ``output_dir``: ``teacher/`` (the BarlowTwins run and encoder, ``representations.safetensors``),
``experts/`` (the KD trajectories), ``distill/`` (checkpoints), ``distilled/`` (the data set with its card) and
``evaluation.json``. Under ``accelerate launch`` every process trains experts (and the BarlowTwins teacher, with
DDP); the other steps run in the main process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import torch
from datasets import load_from_disk
from safetensors.torch import load_file

from hfdc.data import card_name
from hfdc.distributed import process_state
from hfdc.hub import hub_id, push_dataset, push_model
from hfdc.mkdt import data
from hfdc.mkdt.config import MkdtConfig
from hfdc.mkdt.distill import distill, last_checkpoint, learned_step_size
from hfdc.mkdt.evaluate import evaluate_arms
from hfdc.mkdt.experts import train_experts
from hfdc.mkdt.ssl import train_barlow_twins
from hfdc.mkdt.teacher import teacher_representations
from hfdc.models.images import image_mode

logger = logging.getLogger(__name__)

PAPER = (
    "Dataset Distillation via Knowledge Distillation: Towards Efficient Self-Supervised Pre-Training of Deep Networks"
)
ARXIV = "2410.02116"
BARLOW_TWINS = "barlowtwins"


def folder(config: MkdtConfig, name: str) -> Path:
    """``output_dir/<name>``: teacher, experts, distill, distilled or evaluation.json."""
    return Path(config.output_dir) / name


def settings(config: MkdtConfig) -> MkdtConfig:
    """The config a card records: which stage wrote the card is not a setting."""
    return dataclasses.replace(config, stage="all")


def load_teacher(config: MkdtConfig, train):
    """(encoder, image processor or None): the BarlowTwins encoder trained here (saved once under
    teacher/encoder), or ``teacher_model`` (an hfdc classifier folder, or a transformers vision model)."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

    encoder_dir = folder(config, "teacher") / "encoder"
    if config.teacher_model != BARLOW_TWINS:
        if AutoConfig.from_pretrained(config.teacher_model).model_type.startswith("hfdc_"):
            return AutoModelForImageClassification.from_pretrained(config.teacher_model), None
        return AutoModel.from_pretrained(config.teacher_model), AutoImageProcessor.from_pretrained(
            config.teacher_model
        )
    if (encoder_dir / "config.json").is_file():
        return AutoModelForImageClassification.from_pretrained(str(encoder_dir)), None
    encoder = train_barlow_twins(config, train, folder(config, "teacher") / "ssl")
    if process_state().is_main_process:
        card = {
            "method": "mkdt",
            "paper": "Barlow Twins: Self-Supervised Learning via Redundancy Reduction",
            "arxiv": "2103.03230",
            "datasets": [card_name(config.dataset)],
            "description": f"BarlowTwins {config.ssl_encoder} encoder, the self-supervised teacher of an MKDT run "
            f"({len(train)} training images); its `embed` features are the distillation targets.",
            "config": settings(config),
        }
        push_model(encoder, output_dir=encoder_dir, card=card)
    return encoder, None


def teacher_stage(config: MkdtConfig) -> torch.Tensor | None:
    """The teacher's representations of the training rows, written by the main process to
    teacher/representations.safetensors (None in the other processes)."""
    train = data.load_split(config, config.train_split, config.num_train_rows)
    encoder, processor = load_teacher(config, train)
    if not process_state().is_main_process:
        return None
    return teacher_representations(
        encoder.to(process_state().device),
        train,
        processor=processor,
        image_column=config.image_column,
        image_size=config.image_size or None,
        batch_size=config.teacher_batch_size,
        cache_file=folder(config, "teacher") / "representations.safetensors",
    )


def teacher_targets(config: MkdtConfig, rows: int) -> torch.Tensor:
    """The saved teacher representations, checked against the ``rows`` training rows."""
    path = folder(config, "teacher") / "representations.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no teacher representations at {path}: run `hfdc mkdt teacher` first")
    targets = load_file(str(path))["representations"]
    if len(targets) != rows:
        raise ValueError(
            f"{path} holds {len(targets)} teacher representations but the data has {rows} training rows "
            "(dataset / num_train_rows / seed changed?): rerun `hfdc mkdt teacher`"
        )
    return targets


def experts_stage(config: MkdtConfig) -> list[Path]:
    train = data.load_split(config, config.train_split, config.num_train_rows)
    return train_experts(
        config, data.pixels(config, train), teacher_targets(config, len(train)), folder(config, "experts")
    )


def card(config: MkdtConfig, rows: int, figures: dict) -> dict:
    """The distilled set's card: what the columns hold, the teacher, the config and the measured figures."""
    teacher = f"{config.ssl_encoder} trained here with BarlowTwins" if config.teacher_model == BARLOW_TWINS else None
    return {
        "method": "mkdt",
        "paper": PAPER,
        "arxiv": ARXIV,
        "tags": ["dataset-distillation", "self-supervised-learning"],
        "datasets": [card_name(config.dataset)],
        "base_model": hub_id(config.teacher_model),
        "description": (
            f"{config.num_synthetic} images distilled with MKDT from {rows} training rows of "
            f"`{card_name(config.dataset)}` for self-supervised pre-training. Columns: `pixel_values` (the learned "
            "images in [-1, 1], float32, what pre-training uses), `image` (an 8-bit rendering), `target` (the "
            f"learned representation targets; teacher: {teacher or config.teacher_model}), `source_row` and "
            "`label` (the real row each image started from). Pre-train an encoder with MSE(f(pixel_values), "
            "target) at the learned step size below."
        ),
        "config": settings(config),
        "figures": figures,
    }


def distill_figures(config: MkdtConfig) -> dict:
    """Learned step size, iterations and matching loss at the start and the end, from the last checkpoint."""
    state = json.loads((last_checkpoint(folder(config, "distill")) / "state.json").read_text())
    losses = state["losses"]
    return {
        "learned step size (eta)": round(state["lr"], 6),
        "distillation iterations": state["iteration"],
        "matching loss, first 10 iterations": round(sum(losses[:10]) / len(losses[:10]), 4),
        "matching loss, last 10 iterations": round(sum(losses[-10:]) / len(losses[-10:]), 4),
    }


def publish(config: MkdtConfig, distilled, rows: int, figures: dict) -> Path:
    """Save (and push to ``repo_id``) the distilled set under distilled/ with its card."""
    return push_dataset(
        distilled, repo_id=config.repo_id, output_dir=folder(config, "distilled"), card=card(config, rows, figures)
    )


def distill_stage(config: MkdtConfig) -> Path:
    train = data.load_split(config, config.train_split, config.num_train_rows)
    has_labels = config.label_column in train.column_names
    device = process_state().device
    distilled = distill(
        config,
        data.pixels(config, train).to(device),
        teacher_targets(config, len(train)).to(device),
        folder(config, "experts"),
        folder(config, "distill"),
        labels=data.labels(config, train) if has_labels else None,
        label_names=getattr(train.features.get(config.label_column), "names", None),
        mode=image_mode(train, config.image_column),
    )
    return publish(config, distilled, len(train), distill_figures(config))


def load_distilled(config: MkdtConfig):
    """The distilled set to evaluate (``distilled`` or this run's distilled/), in memory; non-empty."""
    source = config.distilled or str(folder(config, "distilled"))
    if Path(source).is_dir():
        distilled = load_from_disk(source, keep_in_memory=True)
    else:
        import datasets

        distilled = datasets.load_dataset(source, split="train")
    if len(distilled) == 0:
        raise ValueError(f"the distilled set {source} is empty: nothing to pre-train on")
    return distilled


def summary(runs: dict) -> dict:
    """arm -> quantity -> (mean, sample std) over the seeds."""
    return {
        arm: {
            key: (float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)
            for key, values in result.items()
        }
        for arm, result in runs.items()
    }


def evaluate_stage(config: MkdtConfig) -> dict:
    """Probe accuracies of MKDT vs the baselines over the seeds, written to evaluation.json and, for this run's
    distilled set, to its card."""
    distilled = load_distilled(config)
    train = data.load_split(config, config.train_split, config.num_train_rows)
    test = data.load_split(config, config.test_split, config.num_test_rows)
    device = process_state().device
    train_images = data.pixels(config, train).to(device)
    targets = teacher_targets(config, len(train)).to(device)
    tensors = distilled.with_format("torch", columns=["pixel_values", "target"])[:]
    images, synthetic_targets = tensors["pixel_values"].to(device), tensors["target"].to(device)
    if synthetic_targets.shape[1] != targets.shape[1]:
        raise ValueError(
            f"the distilled targets have {synthetic_targets.shape[1]} dims but the teacher's representations "
            f"{targets.shape[1]}: evaluate with the teacher the set was distilled from"
        )
    lr = config.pretrain_learning_rate or learned_step_size(folder(config, "distill"))
    arms = {"mkdt": (images, synthetic_targets, lr)}
    if "random" in config.baselines:
        rows = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed))[: len(distilled)]
        arms["random"] = (train_images[rows], targets[rows], config.pretrain_learning_rate or config.lr_init)
    if "none" in config.baselines:
        arms["none"] = None
    runs = evaluate_arms(
        config,
        arms,
        train_images,
        data.labels(config, train).to(device),
        data.pixels(config, test).to(device),
        data.labels(config, test).to(device),
        targets.shape[1],
    )
    result = {"pretrain_learning_rate": lr, "runs": runs, "mean_std": summary(runs)}
    folder(config, "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
    if config.distilled is None:
        figures = distill_figures(config)
        for arm, quantities in result["mean_std"].items():
            for key, (mean, std) in quantities.items():
                if key.startswith("probe_"):
                    figures[f"linear probe {float(key[6:]):.0%} labels, {arm}"] = f"{mean:.4f} ± {std:.4f}"
        publish(config, distilled, len(train), figures)
    return result


def run(config: MkdtConfig):
    """Run ``config.stage`` (or all four in order); the main process writes the shared artifacts."""
    state = process_state()
    stages = ("teacher", "experts", "distill", "evaluate") if config.stage == "all" else (config.stage,)
    result = None
    for stage in stages:
        logger.info("MKDT stage %s", stage)
        if stage == "teacher":
            result = teacher_stage(config)
        elif stage == "experts":
            result = experts_stage(config)
        elif state.is_main_process:
            result = distill_stage(config) if stage == "distill" else evaluate_stage(config)
        state.wait_for_everyone()
    if config.stage in ("evaluate", "all") and state.is_main_process:
        print(json.dumps(result["mean_std"], indent=2))
    return result
