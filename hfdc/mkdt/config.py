"""MkdtConfig: the data, teacher, expert, distillation and evaluation settings of ``hfdc mkdt``.

MKDT (Joshi, Ni, Mirzasoleiman, ICLR 2025, arXiv 2410.02116) distils a data set for self-supervised pre-training:
a student learns an SSL teacher's representations by knowledge distillation (low-variance trajectories), and a
few learnable images with learnable target vectors are optimised to reproduce those trajectories (MTT). The
defaults are the paper's CIFAR settings; the recipes in ``recipes/mkdt`` scale them down for CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hfdc.config import DatasetConfig, OutputConfig, parse_json_object

STAGES = ("teacher", "experts", "distill", "evaluate", "all")
SSL_ENCODERS = ("resnet", "convnet")
STUDENTS = ("convnet",)  # instance norm: no running statistics outside the matched parameters
INITS = ("high_loss", "random")
BASELINES = ("random", "none")


@dataclass
class MkdtConfig(DatasetConfig, OutputConfig):
    """``hfdc mkdt teacher|experts|distill|evaluate|all``: each stage reads what the previous one wrote under
    ``output_dir`` (teacher/, experts/, distill/, distilled/) and skips or resumes finished work."""

    stage: str = field(
        default="all",
        metadata={
            "help": "Stage to run (also the first word: `hfdc mkdt experts --config r.yaml`); all runs the four.",
            "choices": STAGES,
        },
    )
    # --- data ---
    dataset: str = field(
        default="digits",
        metadata={
            "help": "Image data set for hfdc.data.load (embedded digits, a save_to_disk folder such as the "
            "fashion_mnist asset, a Hub id such as uoft-cs/cifar10) with an image and a ClassLabel column."
        },
    )
    train_split: str = field(default="train", metadata={"help": "Split that is distilled (and labelled for probes)."})
    test_split: str = field(default="test", metadata={"help": "Split the linear probes are tested on."})
    image_column: str = field(default="image", metadata={"help": "Image column (img for uoft-cs/cifar10)."})
    label_column: str = field(
        default="label",
        metadata={"help": "ClassLabel column, used only by the linear probes (fine_label: CIFAR-100)."},
    )
    num_train_rows: int = field(
        default=0, metadata={"help": "Distil a seeded random subset of this many training rows; 0 = all of them."}
    )
    num_test_rows: int = field(
        default=0, metadata={"help": "Test the probes on a seeded random subset of this many rows; 0 = all."}
    )
    image_size: int = field(
        default=0, metadata={"help": "Resize images to image_size x image_size (bicubic); 0 = native size."}
    )
    # --- teacher ---
    teacher_model: str = field(
        default="barlowtwins",
        metadata={
            "help": "barlowtwins: train a BarlowTwins encoder on the training images first (ssl_* fields); or a "
            "folder / Hub id of a vision encoder (an hfdc classifier's backbone, or a transformers model's "
            "pooler_output with its image processor)."
        },
    )
    teacher_batch_size: int = field(default=256, metadata={"help": "Images per batch when encoding with the teacher."})
    ssl_encoder: str = field(
        default="resnet",
        metadata={"help": "Encoder trained with BarlowTwins (hfdc.models kind).", "choices": SSL_ENCODERS},
    )
    ssl_encoder_params: str = field(
        default='{"width": 64, "depths": [2, 2, 2, 2]}',
        metadata={"help": "JSON config overrides of the SSL encoder (default: ResNet-18, 512-d features)."},
    )
    ssl_projector_dim: int = field(default=1024, metadata={"help": "BarlowTwins projector width."})
    ssl_lambda: float = field(
        default=5e-3, metadata={"help": "BarlowTwins weight of the off-diagonal cross-correlation terms."}
    )
    ssl_epochs: float = field(default=800, metadata={"help": "BarlowTwins training epochs."})
    ssl_learning_rate: float = field(default=1e-3, metadata={"help": "BarlowTwins AdamW learning rate."})
    ssl_weight_decay: float = field(default=1e-4, metadata={"help": "BarlowTwins AdamW weight decay."})
    ssl_batch_size: int = field(default=256, metadata={"help": "BarlowTwins batch size per device."})
    # --- student and expert trajectories (knowledge distillation) ---
    student: str = field(
        default="convnet",
        metadata={"help": "Student encoder of the trajectories (hfdc.models kind).", "choices": STUDENTS},
    )
    student_params: str = field(
        default='{"width": 128, "depth": 3}',
        metadata={"help": "JSON config overrides of the student (paper: ConvNet width 128, depth 3)."},
    )
    num_experts: int = field(default=100, metadata={"help": "Expert trajectories to train (spread over processes)."})
    expert_train_epochs: int = field(
        default=20, metadata={"help": "Epochs of each expert; parameters are saved at init and after every epoch."}
    )
    expert_learning_rate: float = field(default=0.1, metadata={"help": "Expert SGD learning rate."})
    expert_momentum: float = field(default=0.9, metadata={"help": "Expert SGD momentum."})
    expert_weight_decay: float = field(default=1e-4, metadata={"help": "Expert SGD weight decay."})
    expert_batch_size: int = field(default=256, metadata={"help": "Expert batch size."})
    # --- distillation (trajectory matching) ---
    num_synthetic: int = field(
        default=1000, metadata={"help": "Distilled images (paper: 1000 = 2% of CIFAR-10, 500 = 1% of CIFAR-100)."}
    )
    init: str = field(
        default="high_loss",
        metadata={
            "help": "Initial images: the real ones with the highest KD loss under the trained experts, or random.",
            "choices": INITS,
        },
    )
    init_experts: int = field(
        default=10, metadata={"help": "init=high_loss: experts (final epoch) whose KD losses are averaged."}
    )
    iterations: int = field(default=5000, metadata={"help": "Distillation iterations."})
    syn_steps: int = field(default=40, metadata={"help": "Differentiable student steps on the synthetic data (N)."})
    expert_epochs: int = field(default=5, metadata={"help": "Expert epochs the N steps must cover (M)."})
    max_start_epoch: int = field(
        default=5, metadata={"help": "Start epochs t are drawn from 0 .. max_start_epoch - 1."}
    )
    syn_batch_size: int = field(
        default=256, metadata={"help": "Synthetic images per differentiable step; 0 = all of them."}
    )
    lr_images: float = field(default=1000.0, metadata={"help": "SGD learning rate of the synthetic images."})
    lr_targets: float = field(default=1.0, metadata={"help": "SGD learning rate of the synthetic target vectors."})
    lr_lr: float = field(default=1e-4, metadata={"help": "SGD learning rate of the learnable step size."})
    lr_init: float = field(default=0.1, metadata={"help": "Initial learnable step size (eta)."})
    distill_momentum: float = field(default=0.5, metadata={"help": "Momentum of the three distillation optimisers."})
    max_grad_norm: float = field(
        default=0.0,
        metadata={
            "help": "Clip the joint gradient norm of images, targets and step size (0 = no clipping, the paper); "
            "instance norm makes the gradient of near-blank images spike."
        },
    )
    eval_interval: int = field(
        default=1000, metadata={"help": "Checkpoint (and keep the images) every this many iterations."}
    )
    # --- evaluation: pre-train a fresh student on the distilled set, then linear probes ---
    distilled: str | None = field(
        default=None,
        metadata={
            "help": "evaluate: the distilled set (save_to_disk folder or Hub id); default <output_dir>/distilled."
        },
    )
    pretrain_learning_rate: float = field(
        default=0.0,
        metadata={"help": "Pre-training SGD learning rate; 0 = the learned step size (random baseline: lr_init)."},
    )
    pretrain_epochs: int = field(default=20, metadata={"help": "Pre-training epochs on the distilled set."})
    pretrain_batch_size: int = field(default=256, metadata={"help": "Pre-training batch size."})
    label_fractions: list[float] = field(
        default_factory=lambda: [0.01, 0.05],
        metadata={"help": "Fractions of labelled training rows for the linear probes (stratified)."},
    )
    probe_steps: int = field(default=100, metadata={"help": "L-BFGS steps of each linear probe."})
    probe_l2: float = field(default=1e-3, metadata={"help": "L2 weight on the probe's weights."})
    baselines: list[str] = field(
        default_factory=lambda: list(BASELINES),
        metadata={
            "help": "Arms besides MKDT: random (a random subset of the same size with teacher targets), none "
            "(no pre-training).",
            "choices": BASELINES,
        },
    )
    eval_seeds: int = field(default=3, metadata={"help": "Seeds (seed, seed+1, ...) of every evaluation arm."})

    def __post_init__(self):
        super().__post_init__()
        self.ssl_encoder_params = parse_json_object("ssl_encoder_params", self.ssl_encoder_params)
        self.student_params = parse_json_object("student_params", self.student_params)
        positive = (
            "teacher_batch_size",
            "ssl_projector_dim",
            "ssl_batch_size",
            "num_experts",
            "expert_train_epochs",
            "expert_batch_size",
            "num_synthetic",
            "init_experts",
            "iterations",
            "syn_steps",
            "expert_epochs",
            "max_start_epoch",
            "eval_interval",
            "pretrain_epochs",
            "pretrain_batch_size",
            "probe_steps",
            "eval_seeds",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "num_train_rows",
            "num_test_rows",
            "image_size",
            "syn_batch_size",
            "pretrain_learning_rate",
            "max_grad_norm",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 = the default it names), got {getattr(self, name)}")
        if self.max_start_epoch - 1 + self.expert_epochs > self.expert_train_epochs:
            raise ValueError(
                f"max_start_epoch - 1 + expert_epochs = {self.max_start_epoch - 1 + self.expert_epochs} exceeds "
                f"expert_train_epochs={self.expert_train_epochs}: the last target epoch t + M must be saved; "
                "lower max_start_epoch / expert_epochs or train the experts longer"
            )
        bad = [f for f in self.label_fractions if not 0 < f <= 1]
        if not self.label_fractions or bad:
            raise ValueError(f"label_fractions must be fractions in (0, 1], got {self.label_fractions}")
