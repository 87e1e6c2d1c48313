"""Configuration of ``hfdc useful``: data, model, discovery epoch and partition, SAM (shared with TADA), upsampling."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from transformers import TrainingArguments

from hfdc.useful.discovery import METHODS

SELECTIONS = ("useful", "random", "none")
MODELS = ("two_layer_cnn", "convnet", "resnet")


def parse_json_object(name: str, value) -> dict:
    """A dict from a dict or a JSON object string (YAML mappings arrive as JSON text); else ValueError naming ``name``."""
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(f"{name} must be a JSON object like '{{\"n_train\": 400}}', got {value!r} ({err})") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"{name} must be a JSON object, got {value!r}")
    return parsed


def card_config(config) -> dict:
    """The fields of ``config`` that differ from their defaults (what a card needs to reproduce the run), plus output_dir."""
    changed = {"output_dir": config.output_dir}
    for f in dataclasses.fields(config):
        if not f.init or f.name.startswith("_"):
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        value = getattr(config, f.name)
        value = value.value if hasattr(value, "value") else value  # enums -> their strings
        unset = default in (None, "", "none") and value in (None, False, [], {}, "")
        same_json = isinstance(default, str) and isinstance(value, dict) and json.loads(default) == value
        if (
            value != default
            and not unset
            and not same_json
            and isinstance(value, (str, int, float, bool, list, dict, type(None)))
        ):
            changed[f.name] = value
    return changed


@dataclass
class DiscoveryConfig(TrainingArguments):
    """Data, classifier, optimiser (SGD/SAM) and how the slow-learnable examples are found; shared by USEFUL and TADA."""

    dataset: str = field(
        default="feature_patches",
        metadata={
            "help": "Embedded data set (feature_patches, shapes, digits) or a Hub data set id / datasets loader with train and test splits."
        },
    )
    dataset_params: str = field(
        default="{}",
        metadata={"help": "JSON object (or YAML mapping) of hfdc.data.load or datasets.load_dataset parameters."},
    )
    image_column: str = field(
        default="image", metadata={"help": "Image column of a Hub data set (e.g. img for uoft-cs/cifar10)."}
    )
    label_column: str = field(default="label", metadata={"help": "ClassLabel column of a Hub data set."})
    model: str = field(
        default="two_layer_cnn",
        metadata={"help": f"Classifier: {', '.join(MODELS)} (two_layer_cnn for feature_patches)."},
    )
    model_params: str = field(
        default="{}", metadata={"help": 'JSON object of model config overrides (e.g. {"filters": 4}).'}
    )
    separation_epoch: int = field(
        default=2,
        metadata={
            "help": "Epoch t at which examples are partitioned (about 5-10%% of the budget); 0 = once training error flattens."
        },
    )
    flatten_tol: float = field(
        default=0.01,
        metadata={"help": "With separation_epoch=0: flattened once the per-epoch train-error drop is below this."},
    )
    partition: str = field(
        default="kmeans",
        metadata={
            "help": f"How to find slow-learnable examples: {', '.join(METHODS)} (misclassified + a large upsample_factor is JTT's error set)."
        },
    )
    quantile: float = field(
        default=0.5,
        metadata={"help": "partition=quantile: per-class loss quantile above which examples count as slow."},
    )
    sam_rho: float = field(
        default=0.0, metadata={"help": "SAM neighbourhood radius rho; 0 trains with the plain optimizer (args.optim)."}
    )
    sam_adaptive: bool = field(
        default=False, metadata={"help": "Use ASAM (weight-scaled neighbourhood) instead of SAM when sam_rho > 0."}
    )
    repo_id: str | None = field(
        default=None, metadata={"help": "Hub repo id to push the retrained model to; unset saves locally only."}
    )
    cpu_threads: int = field(
        default=0,
        metadata={
            "help": "torch intra-op CPU threads for the run (1 is fastest for the tiny CPU models on busy machines); 0 = torch default."
        },
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Kept False: the data transform already yields only model inputs and labels."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.partition not in METHODS:
            raise ValueError(f"partition must be one of {METHODS}, got {self.partition!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.separation_epoch < 0:
            raise ValueError(
                f"separation_epoch must be >= 0 (0 = once training error flattens), got {self.separation_epoch}"
            )
        if self.separation_epoch > self.num_train_epochs:
            raise ValueError(
                f"separation_epoch={self.separation_epoch} is beyond the training length num_train_epochs={self.num_train_epochs}; "
                "USEFUL separates at about 5-10% of the budget"
            )
        if self.cpu_threads < 0:
            raise ValueError(f"cpu_threads must be >= 0 (0 = torch default), got {self.cpu_threads}")
        if self.sam_rho < 0:
            raise ValueError(f"sam_rho must be >= 0, got {self.sam_rho}")
        self.dataset_params = parse_json_object("dataset_params", self.dataset_params)
        self.model_params = parse_json_object("model_params", self.model_params)


@dataclass
class UsefulConfig(DiscoveryConfig):
    """Train t epochs, find the slow-learnable examples, upsample them, retrain from scratch (USEFUL, arXiv 2404.17768)."""

    selection: str = field(
        default="useful",
        metadata={
            "help": "Rows to upsample: useful (discovered), random (same count, the paper's baseline), none (plain training)."
        },
    )
    upsample_factor: int = field(
        default=2, metadata={"help": "Each selected row appears this many times in the retraining set."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.upsample_factor < 1:
            raise ValueError(f"upsample_factor must be >= 1, got {self.upsample_factor}")
