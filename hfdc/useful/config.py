"""Configuration of ``hfdc useful``: data, augmentation, model, discovery epoch and partition, SAM (shared with TADA),
and how the selected rows are emphasised (upsampled or upweighted)."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from hfdc.config import DatasetConfig, HfdcConfig, parse_json_object
from hfdc.models import CLASSIFIERS
from hfdc.useful.discovery import METHODS

ROWS = ("targeted", "random", "full", "none")
EMPHASIS = ("upsample", "upweight")


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
    random_crop_padding: int = field(
        default=0,
        metadata={
            "help": "Training-time augmentation: pad images by this many black pixels per side and crop back at a "
            "random offset (4 for CIFAR-10, as in the papers); 0 = no crop. Training rows only, never evaluation."
        },
    )
    random_flip: bool = field(
        default=False,
        metadata={
            "help": "Training-time augmentation: mirror images left-right with probability 1/2 (CIFAR-10: true; "
            "leave false where a mirror image changes the class, e.g. digits)."
        },
    )
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
            "help": "How to find slow-learnable examples (misclassified + emphasis=upweight is JTT's error set).",
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
    sam_eta: float = field(
        default=0.01, metadata={"help": "ASAM's offset eta in the scale T_w = |w| + eta (Kwon et al., 2021)."}
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
        if self.random_crop_padding < 0:
            raise ValueError(f"random_crop_padding must be >= 0 pixels (0 = no crop), got {self.random_crop_padding}")
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
    emphasis: str = field(
        default="upsample",
        metadata={
            "help": "How the selected rows count more: upsample (duplicated, USEFUL) or upweight (their loss "
            "weighted; the paper's loss-upweighting baseline, and JTT with partition=misclassified).",
            "choices": EMPHASIS,
        },
    )
    factor: int = field(
        default=2,
        metadata={
            "help": "Each selected row counts this many times: appears factor times (upsample) or has loss weight "
            "factor (upweight). USEFUL uses 2."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.factor < 1:
            raise ValueError(f"factor must be an integer >= 1, got {self.factor}")
