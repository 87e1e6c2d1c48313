"""The USEFUL recipe from one config: train t epochs -> discover -> upsample -> retrain from scratch (Trainer or SamTrainer)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict
from transformers import Trainer, default_data_collator

from hfdc.optim import SamTrainer
from hfdc.useful.callback import SlowLearnableCallback
from hfdc.useful.config import DiscoveryConfig, UsefulConfig
from hfdc.useful.data import image_mode, model_inputs
from hfdc.useful.discovery import SlowLearnable
from hfdc.useful.model import TwoLayerCNN, TwoLayerCNNConfig
from hfdc.useful.upsample import random_indices, upsample

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def cpu_threads(threads: int):
    """Run the block with ``threads`` torch intra-op threads (0 = leave as is); the previous number is restored."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def dataset_ref(config: DiscoveryConfig) -> str:
    """The data set's name for cards: hfdc/<name> for the embedded ones, else the Hub id / loader as given."""
    import hfdc.data

    return f"hfdc/{config.dataset}" if config.dataset in hfdc.data.DATASETS else config.dataset


def load_data(config: DiscoveryConfig) -> DatasetDict:
    """The embedded data set ``config.dataset`` or ``datasets.load_dataset(config.dataset, **dataset_params)``, with
    ``image_column`` / ``label_column`` renamed to image / label; it must have train and test splits."""
    import hfdc.data

    if config.dataset in hfdc.data.DATASETS:
        return hfdc.data.load(config.dataset, **config.dataset_params)
    from datasets import load_dataset

    data = load_dataset(config.dataset, **config.dataset_params)
    missing = {"train", "test"} - set(data)
    if missing:
        raise ValueError(f"data set {config.dataset!r} has splits {sorted(data)}; it needs {sorted(missing)} too")
    for column, name in ((config.image_column, "image"), (config.label_column, "label")):
        if column not in data["train"].column_names:
            raise ValueError(
                f"column {column!r} not in {config.dataset!r} (columns: {data['train'].column_names}); set image_column / label_column"
            )
        if column != name:
            data = data.rename_column(column, name)
    return data


def build_model(config: DiscoveryConfig, train: Dataset):
    """A fresh classifier for ``train`` (same ``config.seed`` -> same initial weights)."""
    num_labels = train.features["label"].num_classes
    if config.model == "two_layer_cnn":
        if "x" not in train.column_names:
            raise ValueError(
                "model='two_layer_cnn' needs feature patches (column 'x'); use dataset='feature_patches' or model='convnet'"
            )
        dim = len(train.with_format(None)[0]["x"][0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            return TwoLayerCNN(TwoLayerCNNConfig(num_labels=num_labels, dim=dim, **config.model_params))
    if "image" not in train.column_names:
        raise ValueError(
            f"model={config.model!r} needs an image column; use model='two_layer_cnn' for feature_patches"
        )
    from hfdc.models import tiny

    size = train.with_format(None)[0]["image"].size[0]
    channels = 1 if image_mode(train) == "L" else 3
    return tiny(
        config.model,
        seed=config.seed,
        num_labels=num_labels,
        num_channels=channels,
        image_size=size,
        **config.model_params,
    )


def make_trainer(config: DiscoveryConfig, model, train: Dataset, output_dir: str | Path, callbacks=()) -> Trainer:
    """Trainer (or SamTrainer when ``config.sam_rho > 0``) on ``train`` writing under ``output_dir``."""
    args = dataclasses.replace(config, output_dir=str(output_dir))
    kwargs = dict(
        model=model,
        args=args,
        train_dataset=model_inputs(train),
        data_collator=default_data_collator,
        callbacks=list(callbacks),
    )
    if config.sam_rho > 0:
        return SamTrainer(rho=config.sam_rho, adaptive=config.sam_adaptive, **kwargs)
    return Trainer(**kwargs)


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
    trainer = make_trainer(
        config, build_model(config, train), train, Path(config.output_dir) / "discovery", [callback]
    )
    trainer.train()
    if callback.result is None:
        raise ValueError(
            f"training stopped at epoch {trainer.state.epoch} before separation_epoch={config.separation_epoch} "
            "(max_steps or an early-stopping callback?); lower separation_epoch or remove the limit"
        )
    return callback.result


def accuracy(trainer: Trainer, dataset: Dataset) -> dict[str, float]:
    """Test accuracy; on feature_patches also the accuracy on rows without the easy feature."""
    predictions = trainer.predict(model_inputs(dataset)).predictions.argmax(-1)
    plain = dataset.with_format(None)
    correct = predictions == np.asarray(plain["label"])
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


def select_rows(config: UsefulConfig, train: Dataset) -> tuple[SlowLearnable | None, list[int]]:
    """Discovered slow-learnable rows (``selection=useful``), a random set of the same size (``random``) or none."""
    if config.selection == "none":
        return None, []
    slow = discover(config, train)
    if config.selection == "random":
        return slow, random_indices(len(train), len(slow.indices), config.seed)
    return slow, slow.indices


def train_useful(config: UsefulConfig, data: DatasetDict | None = None) -> UsefulResult:
    """Run the whole recipe on ``data`` (default: :func:`load_data`)."""
    data = load_data(config) if data is None else data
    with cpu_threads(config.cpu_threads):
        slow, selected = select_rows(config, data["train"])
        train = upsample(data["train"], selected, config.upsample_factor) if selected else data["train"]
        trainer = make_trainer(config, build_model(config, data["train"]), train, config.output_dir)
        trainer.train()
        metrics = {f"test_{k}": v for k, v in accuracy(trainer, data["test"]).items()}
    metrics.update(num_selected=len(selected), train_rows=len(train), processes=trainer.args.world_size)
    logger.info("USEFUL (%s): %s", config.selection, metrics)
    return UsefulResult(trainer, slow, selected, train, metrics)
