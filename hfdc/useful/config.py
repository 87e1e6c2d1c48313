"""Configuration of ``hfdc useful``: data, model, discovery epoch and partition, SAM (shared with TADA), upsampling."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from hfdc.config import DatasetConfig, HfdcConfig, parse_json_object
from hfdc.models import CLASSIFIERS
from hfdc.useful.discovery import METHODS

ROWS = ("targeted", "random", "full", "none")


@dataclass
class DiscoveryConfig(DatasetConfig, HfdcConfig, TrainingArguments):
    """Data, classifier, optimiser (SGD/SAM) and how the slow-learnable examples are found; shared by USEFUL and TADA."""

    dataset: str = field(
        default="feature_patches",
        metadata={
            "help": "Data set for hfdc.data.load (embedded feature_patches, shapes, digits; a save_to_disk folder; a Hub "
            "id or builder) with train and test splits."
        },
    )
    image_column: str = field(
        default="image", metadata={"help": "Image column of a Hub data set (e.g. img for uoft-cs/cifar10)."}
    )
    label_column: str = field(default="label", metadata={"help": "ClassLabel column of a Hub data set."})
    model: str = field(
        default="two_layer_cnn",
        metadata={
            "help": "Classifier (hfdc.models.classifier_for); two_layer_cnn for feature_patches.",
            "choices": CLASSIFIERS,
        },
    )
    model_params: str = field(
        default="{}", metadata={"help": 'JSON object of model config overrides (e.g. {"filters": 4}).'}
    )
    separation_epoch: int = field(
        default=2,
        metadata={
            "help": "Epoch t at which examples are partitioned (about 5-10%% of the budget); 0 = once training error "
            "flattens."
        },
    )
    flatten_tol: float = field(
        default=0.01,
        metadata={"help": "With separation_epoch=0: flattened once the per-epoch train-error drop is below this."},
    )
    partition: str = field(
        default="kmeans",
        metadata={
            "help": "How to find slow-learnable examples (misclassified + a large upsample_factor is JTT's error set).",
            "choices": METHODS,
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
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Kept False: the data transform already yields only model inputs and labels."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.separation_epoch < 0:
            raise ValueError(
                f"separation_epoch must be >= 0 (0 = once training error flattens), got {self.separation_epoch}"
            )
        if self.separation_epoch > self.num_train_epochs:
            raise ValueError(
                f"separation_epoch={self.separation_epoch} is beyond the training length "
                f"num_train_epochs={self.num_train_epochs}; USEFUL separates at about 5-10% of the budget"
            )
        if self.sam_rho < 0:
            raise ValueError(f"sam_rho must be >= 0, got {self.sam_rho}")
        self.model_params = parse_json_object("model_params", self.model_params)


@dataclass
class UsefulConfig(DiscoveryConfig):
    """Train t epochs, find the slow-learnable examples, upsample them, retrain from scratch (USEFUL, arXiv 2404.17768)."""

    selection: str = field(
        default="targeted",
        metadata={
            "help": "Rows to upsample: targeted (the slow-learnable rows), random (same count, the paper's baseline), "
            "full (every row), none (plain training).",
            "choices": ROWS,
        },
    )
    upsample_factor: int = field(
        default=2, metadata={"help": "Each selected row appears this many times in the retraining set."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.upsample_factor < 1:
            raise ValueError(f"upsample_factor must be >= 1, got {self.upsample_factor}")
