"""``hfdc data``: generate an embedded data set and save it (and push it) with a card."""

from __future__ import annotations

import dataclasses
import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from hfdc.config import OutputConfig
from hfdc.data import DATASETS, load, params

logger = logging.getLogger(__name__)

# data set -> (paper title, arXiv id) it re-creates
PAPERS = {
    "feature_patches": (
        "Changing the Training Data Distribution to Reduce Simplicity Bias Improves In-distribution Generalization",
        "2404.17768",
    ),
}
SOURCE_DATASETS = {"digits": ["sklearn.datasets.load_digits (UCI optical recognition of handwritten digits)"]}


def _param(help_: str):
    """An optional data set parameter: None means the data set's default."""
    return field(
        default=None, metadata={"help": f"{help_} Unset: the data set's default; only for data sets that take it."}
    )


@dataclass
class DataConfig(OutputConfig):
    """Which embedded data set to generate and its parameters; unset parameters keep the data set's defaults."""

    name: str = field(default="shapes", metadata={"help": f"Data set: one of {', '.join(DATASETS)}."})
    n_train: int | None = _param("Rows in the train split (digits: a stratified subset of the rest).")
    n_validation: int | None = _param("Rows in the validation split.")
    n_test: int | None = _param("Rows in the test split.")
    image_size: int | None = _param("shapes: image side in pixels.")
    noise_fraction: float | None = _param("shapes: fraction of rows whose noisy_caption describes another class.")
    num_patches: int | None = _param("feature_patches: patches per example (P).")
    dim: int | None = _param("feature_patches: patch dimension (d).")
    num_classes: int | None = _param(
        "feature_patches: classes (2: labels -1/+1 sharing one easy and one hard vector)."
    )
    easy_strength: float | None = _param("feature_patches: easy-feature scale beta_e.")
    hard_strength: float | None = _param("feature_patches: hard-feature scale beta_h (< beta_e).")
    noise_std: float | None = _param("feature_patches: standard deviation of the noise patches.")
    missing_easy_fraction: float | None = _param("feature_patches: fraction of examples without the easy patch.")
    hard_noise_std: float | None = _param("feature_patches: noise on the hard feature's strength (0 = separable).")


def dataset_params(config: DataConfig) -> dict:
    """The data set parameters set in ``config`` (plus seed); a set one the data set lacks is a ValueError."""
    accepted = params(config.name)
    chosen = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(DataConfig)
        if f.name not in ("name", *(g.name for g in dataclasses.fields(OutputConfig)))
        and getattr(config, f.name) is not None
    }
    wrong = sorted(set(chosen) - set(accepted))
    if wrong:
        raise ValueError(
            f"field(s) {', '.join(map(repr, wrong))} do not apply to data set {config.name!r}; "
            f"it takes: {', '.join(accepted)}"
        )
    return {**chosen, "seed": config.seed}


def figures(dataset) -> dict:
    """Rows per split and class counts per split (``name count, ...``) of a DatasetDict with a label column."""
    out = {f"rows_{split}": ds.num_rows for split, ds in dataset.items()}
    for split, ds in dataset.items():
        names = ds.features["label"].names
        counts = [0] * len(names)
        for label in ds["label"]:
            counts[label] += 1
        out[f"class_counts_{split}"] = ", ".join(f"{n} {c}" for n, c in zip(names, counts))
    return out


def card(config: DataConfig, dataset) -> dict:
    """The hub card dict: method "data", the data set's description, its parameters, the measured counts."""
    doc = importlib.import_module(DATASETS[config.name]).__doc__
    paper, arxiv = PAPERS.get(config.name, (None, None))
    return {
        "method": "data",
        "pretty_name": f"hfdc {config.name}",
        "description": doc.strip(),
        "paper": paper,
        "arxiv": arxiv,
        "tags": ["synthetic", config.name] if config.name != "digits" else [config.name],
        "datasets": SOURCE_DATASETS.get(config.name),
        "config": config,
        "figures": figures(dataset),
    }


def run(config: DataConfig) -> Path:
    """Generate ``config.name`` and save it via ``hfdc.hub.push_dataset``; returns the local folder."""
    from hfdc.hub import push_dataset

    used = dataset_params(config)
    dataset = load(config.name, **used)
    folder = push_dataset(dataset, repo_id=config.repo_id, output_dir=config.output_dir, card=card(config, dataset))
    logger.info("data set %s (%s) saved to %s", config.name, figures(dataset), folder)
    return folder
