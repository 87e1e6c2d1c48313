"""The USEFUL recipe from one config: train t epochs -> discover -> upsample (or upweight) -> retrain from scratch
(Trainer or SamTrainer, with per-example loss weights when upweighting)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict
from transformers import Trainer, default_data_collator

from hfdc.models import classifier_for
from hfdc.optim import SamTrainer
from hfdc.useful.callback import SlowLearnableCallback
from hfdc.useful.config import ROWS, DiscoveryConfig, UsefulConfig
from hfdc.useful.data import load_splits, model_inputs, training_inputs
from hfdc.useful.discovery import SlowLearnable, training_outputs
from hfdc.useful.upsample import random_indices, upsample, upweight
from hfdc.useful.weighting import WeightedLossSamTrainer, WeightedLossTrainer

logger = logging.getLogger(__name__)


def new_model(config: DiscoveryConfig, train: Dataset):
    """A fresh ``config.model`` classifier for ``train`` (same ``config.seed`` -> same initial weights)."""
    return classifier_for(config.model, train, seed=config.seed, **config.model_params)


def make_trainer(config: DiscoveryConfig, model, train: Dataset, output_dir: str | Path, callbacks=()) -> Trainer:
    """Trainer on ``train`` (augmented as the config says) writing under ``output_dir``: a SamTrainer when
    ``config.sam_rho > 0``, with per-example loss weights when ``train`` has a ``loss_weight`` column."""
    args = dataclasses.replace(config, output_dir=str(output_dir))
    kwargs = dict(
        model=model,
        args=args,
        train_dataset=training_inputs(config, train),
        data_collator=default_data_collator,
        callbacks=list(callbacks),
    )
    weighted = "loss_weight" in train.column_names
    if config.sam_rho > 0:
        sam = WeightedLossSamTrainer if weighted else SamTrainer
        return sam(rho=config.sam_rho, adaptive=config.sam_adaptive, eta=config.sam_eta, **kwargs)
    return (WeightedLossTrainer if weighted else Trainer)(**kwargs)


def discover(config: DiscoveryConfig, train: Dataset) -> SlowLearnable:
    """Train a fresh model until ``config.separation_epoch`` (or flattening) and partition the training set."""
    callback = SlowLearnableCallback(
        model_inputs(train),
        default_data_collator,
        epoch=config.separation_epoch or None,
        flatten_tol=config.flatten_tol,
        method=config.partition,
        quantile=config.quantile,
        seed=config.seed,
        batch_size=config.per_device_eval_batch_size,
    )
    trainer = make_trainer(config, new_model(config, train), train, Path(config.output_dir) / "discovery", [callback])
    trainer.train()
    if callback.result is None:
        raise ValueError(
            f"training stopped at epoch {trainer.state.epoch} before separation_epoch={config.separation_epoch} "
            "(max_steps or an early-stopping callback?); lower separation_epoch or remove the limit"
        )
    return callback.result


def accuracy(trainer: Trainer, dataset: Dataset) -> dict[str, float]:
    """Test accuracy over every row of ``dataset`` (read in order, never dropped by ``dataloader_drop_last``); on
    feature_patches also the accuracy on rows without the easy feature."""
    logits, labels = training_outputs(
        trainer.model, model_inputs(dataset), default_data_collator, trainer.args.per_device_eval_batch_size
    )
    correct = (logits.argmax(-1) == labels).numpy()
    plain = dataset.with_format(None)
    result = {"accuracy": float(correct.mean())}
    if "has_easy" in dataset.column_names:
        hard = ~np.asarray(plain["has_easy"])
        result["accuracy_without_easy"] = float(correct[hard].mean()) if hard.any() else float("nan")
    return result


@dataclass
class UsefulResult:
    """What one run of the recipe produced: the retrained trainer, the selection and test figures."""

    trainer: Trainer
    slow: SlowLearnable | None
    selected: list[int]
    train_dataset: Dataset
    metrics: dict


def choose_rows(config: DiscoveryConfig, train: Dataset, rows: str) -> tuple[SlowLearnable | None, list[int]]:
    """The rows a method acts on (upsample, augment): ``targeted`` (the slow-learnable rows found by
    :func:`discover`), ``random`` (a random set of the same size), ``full`` (every row) or ``none``."""
    if rows not in ROWS:
        raise ValueError(f"rows must be one of {ROWS}, got {rows!r}")
    if rows == "none":
        return None, []
    if rows == "full":
        return None, list(range(len(train)))
    slow = discover(config, train)
    if rows == "random":
        return slow, random_indices(len(train), len(slow.indices), config.seed)
    return slow, slow.indices


def emphasise(config: UsefulConfig, train: Dataset, selected: list[int]) -> Dataset:
    """The retraining set: ``selected`` rows upsampled or upweighted by ``config.factor`` (``config.emphasis``)."""
    if not selected:
        return train
    return (upsample if config.emphasis == "upsample" else upweight)(train, selected, config.factor)


def train_useful(config: UsefulConfig, data: DatasetDict | None = None) -> UsefulResult:
    """Run the whole recipe on ``data`` (default: :func:`hfdc.useful.data.load_splits`)."""
    data = load_splits(config) if data is None else data
    slow, selected = choose_rows(config, data["train"], config.selection)
    train = emphasise(config, data["train"], selected)
    trainer = make_trainer(config, new_model(config, data["train"]), train, config.output_dir)
    trainer.train()
    metrics = {f"test_{k}": v for k, v in accuracy(trainer, data["test"]).items()}
    metrics.update(num_selected=len(selected), train_rows=len(train), processes=trainer.args.world_size)
    if slow is not None:
        metrics.update(discovery_epoch=slow.epoch, slow_fraction=slow.stats["fraction"])
    logger.info("USEFUL (%s): %s", config.selection, metrics)
    return UsefulResult(trainer, slow, selected, train, metrics)
