"""DDRankingConfig: the real data, the distilled set and the DD-Ranking evaluation protocol of ``hfdc ddranking``.

Protocol (Li et al., 2025, arXiv 2505.13300; ``ddranking`` 0.2.0): every accuracy is the best over a learning-rate
grid of the best test accuracy seen every ``eval_every`` epochs; ``num_eval`` runs with seeds seed, seed+1, ...
give mean and std. SGD (momentum 0.9, weight decay 5e-4); soft labels from a teacher (KL at ``temperature``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hfdc.config import DatasetConfig, OutputConfig, check_choices, parse_json_object
from hfdc.ddranking.augment import AUGMENTATIONS

METRICS = ("lrs", "ars")
SOFT_LABEL_MODES = ("teacher", "stored", "hard")
SCHEDULES = ("cosine", "step", "constant")
MODELS = ("convnet", "resnet")


@dataclass
class ProtocolConfig:
    """How every evaluation model is trained and scored (usable alone with :class:`hfdc.ddranking.Evaluator`)."""

    model: str = field(default="convnet", metadata={"help": "Evaluation model (hfdc.models kind).", "choices": MODELS})
    model_params: str = field(
        default='{"width": 128, "depth": 3}',
        metadata={"help": "JSON config overrides of the evaluation model (DD-Ranking: ConvNet-3, width 128)."},
    )
    soft_label_mode: str = field(
        default="teacher",
        metadata={
            "help": "The method's own labels: teacher (the teacher labels every augmented view, KL loss), stored "
            "(one soft label per image from soft_label_column; the random subset gets the teacher's), hard.",
            "choices": SOFT_LABEL_MODES,
        },
    )
    augmentation: str = field(
        default="dsa",
        metadata={
            "help": "Augmentation of the method's evaluation (and of ARS's with-augmentation runs).",
            "choices": AUGMENTATIONS,
        },
    )
    hard_label_augmentation: bool = field(
        default=False, metadata={"help": "Also augment the hard-label runs of HLR (DD-Ranking: no)."}
    )
    learning_rates: list[float] = field(
        default_factory=lambda: [0.001, 0.005, 0.01, 0.05, 0.1],
        metadata={"help": "Learning-rate grid; each accuracy is the best over it."},
    )
    epochs: int = field(default=300, metadata={"help": "Training epochs of each evaluation model."})
    eval_every: int = field(
        default=20, metadata={"help": "Test every this many epochs (and at the end); keep the max."}
    )
    num_eval: int = field(default=5, metadata={"help": "Evaluation runs (seeds seed .. seed+num_eval-1)."})
    batch_size: int = field(default=256, metadata={"help": "Batch size of the evaluation models."})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum."})
    weight_decay: float = field(default=5e-4, metadata={"help": "SGD weight decay."})
    lr_schedule: str = field(
        default="cosine",
        metadata={"help": "Learning-rate schedule over the epochs (step: x0.1 at half).", "choices": SCHEDULES},
    )
    temperature: float = field(default=1.2, metadata={"help": "Softmax temperature of the KL soft-label loss."})
    mix_beta: float = field(default=1.0, metadata={"help": "Beta(beta, beta) of mixup / cutmix."})
    lrs_weight: float = field(default=0.5, metadata={"help": "w of LRS = N(w * IOR - (1 - w) * HLR)."})
    ars_weight: float = field(default=0.5, metadata={"help": "w of ARS = N(w * IOR_aug + (1 - w) * IOR_no_aug)."})
    full_accuracy: float = field(
        default=0.0,
        metadata={
            "help": "Acc(full real data, hard labels) as a fraction, if known; 0 = train the evaluation model on all "
            "training rows once (full_epochs, full_learning_rate), which is also the default teacher."
        },
    )
    full_epochs: int = field(default=50, metadata={"help": "Epochs of the full-data model."})
    full_learning_rate: float = field(default=0.01, metadata={"help": "Learning rate of the full-data model."})
    seed: int = field(default=0, metadata={"help": "Seed of the first evaluation run."})

    def __post_init__(self):
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()
        check_choices(self)
        self.model_params = parse_json_object("model_params", self.model_params)
        for name in ("epochs", "eval_every", "num_eval", "batch_size", "full_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rates or min(self.learning_rates) <= 0:
            raise ValueError(f"learning_rates must be a non-empty list of positive rates, got {self.learning_rates}")
        if not 0 <= self.full_accuracy <= 1:
            raise ValueError(
                f"full_accuracy={self.full_accuracy} must be a fraction in [0, 1] (divide percentages by 100)"
            )
        for name in ("lrs_weight", "ars_weight"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")


@dataclass
class DDRankingConfig(DatasetConfig, ProtocolConfig, OutputConfig):
    """``hfdc ddranking``: score a distilled set (images + labels) against random real subsets of ``dataset``."""

    distilled: str = field(
        default="",
        metadata={
            "help": "The distilled set: a save_to_disk folder or Hub id with images (pixel_values or image) "
            "and labels."
        },
    )
    distilled_split: str = field(default="train", metadata={"help": "Split of a Hub distilled set."})
    distilled_label_column: str = field(default="label", metadata={"help": "Hard-label column of the distilled set."})
    soft_label_column: str = field(
        default="", metadata={"help": "soft_label_mode=stored: column of per-image soft labels (teacher logits)."}
    )
    teacher_model: str = field(
        default="",
        metadata={
            "help": "Teacher classifier (folder / Hub id, AutoModelForImageClassification); empty = the "
            "full-data model."
        },
    )
    metrics: list[str] = field(
        default_factory=lambda: list(METRICS), metadata={"help": "Scores to compute.", "choices": METRICS}
    )
    dataset: str = field(
        default="digits",
        metadata={"help": "Real data set (hfdc.data.load) the set was distilled from, with train and test splits."},
    )
    train_split: str = field(default="train", metadata={"help": "Real training split (random subsets, full data)."})
    test_split: str = field(default="test", metadata={"help": "Split every accuracy is measured on."})
    image_column: str = field(default="image", metadata={"help": "Image column of the real data."})
    label_column: str = field(default="label", metadata={"help": "ClassLabel column of the real data."})
    num_train_rows: int = field(default=0, metadata={"help": "Seeded subset of the training rows; 0 = all."})
    num_test_rows: int = field(default=0, metadata={"help": "Seeded subset of the test rows; 0 = all."})
    image_size: int = field(default=0, metadata={"help": "Resize real images to this side; 0 = native."})

    def __post_init__(self):
        super().__post_init__()
        if not self.distilled:
            raise ValueError("distilled is required: the folder or Hub id of the distilled set to score")
        if self.soft_label_mode == "stored" and not self.soft_label_column:
            raise ValueError("soft_label_mode=stored needs soft_label_column (the distilled set's soft labels)")
