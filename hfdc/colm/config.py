"""ColmConfig: TrainingArguments plus the CoLM selection knobs and what `hfdc colm` trains on.

CoLM (Nguyen et al., ICLR 2025, arXiv 2407.19580): each step, select a small batch from a large one by
facility location on zeroth-order per-example gradient features, and train on the small batch only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from transformers import TrainingArguments

from hfdc.config import DatasetConfig, HfdcConfig
from hfdc.submodular import BUDGET_MODES, METRICS

SPARSIFY = ("top", "random", "smallest")
FEATURE_OPTIMIZERS = ("adam", "sgd")


@dataclass
class ColmConfig(DatasetConfig, HfdcConfig, TrainingArguments):
    """TrainingArguments for ColmTrainer; ``per_device_train_batch_size`` is the SMALL batch that is trained."""

    # --- selection ---
    selection_ratio: float = field(
        default=0.5,
        metadata={
            "help": "Small batch / large batch. The large batch per device is "
            "ceil(per_device_train_batch_size / selection_ratio)."
        },
    )
    source_column: str = field(default="source", metadata={"help": "Column naming each example's data source."})
    keep_sources: list[str] = field(
        default_factory=list,
        metadata={"help": "Sources whose examples are always kept (rare sources of the mixture)."},
    )
    budget_mode: str = field(
        default="proportional",
        metadata={
            "help": "Per-source budget, or none (one pool for all sources).",
            "choices": (*BUDGET_MODES, "none"),
        },
    )
    similarity: str = field(
        default="l1",
        metadata={
            "help": "Facility-location similarity between features (l1: max_dist - |x_i - x_j|_1, as in the paper).",
            "choices": METRICS,
        },
    )
    use_medoid_weights: bool = field(
        default=False,
        metadata={"help": "Weight each selected example's loss by its medoid weight (cluster size)."},
    )
    # --- zeroth-order gradient features ---
    zo_parameters: str = field(
        default="v_proj",
        metadata={
            "help": "Regex of the parameter block for gradient features; the last layer's matches are used, "
            "only LoRA weights on a PEFT model (paper: last layer's V-projection)."
        },
    )
    zo_eps: float = field(default=1e-3, metadata={"help": "Perturbation size of the two-sided zeroth-order estimate."})
    zo_directions: int = field(
        default=1, metadata={"help": "Gaussian directions averaged per step (2 forward passes each)."}
    )
    zo_reuse_prefix: bool = field(
        default=True,
        metadata={
            "help": "Run the layers before the block's layer once per chunk and only the rest for each "
            "perturbed pass (the paper's efficient variant; same features). Set false for models whose layers "
            "do not return a hidden-states tensor."
        },
    )
    zo_dim: int = field(default=2560, metadata={"help": "Feature coordinates kept per source after sparsification."})
    sparsify: str = field(
        default="top",
        metadata={"help": "Which coordinates to keep per source (by |mean feature|).", "choices": SPARSIFY},
    )
    feature_optimizer: str = field(
        default="adam",
        metadata={
            "help": "Feature normalisation: adam (m_hat / (sqrt(v_hat) + eps), moments kept across steps, "
            "HF Adam betas/eps) or sgd (raw features).",
            "choices": FEATURE_OPTIMIZERS,
        },
    )
    # --- what `hfdc colm` trains on (ignored by ColmTrainer itself) ---
    model_name_or_path: str = field(
        default="tiny:llama",
        metadata={"help": "Causal LM: tiny:llama (hfdc.models random tiny Llama) or a Hub / local path."},
    )
    dataset: str = field(
        default="sentiment",
        metadata={
            "help": "Data set for hfdc.data.load: an embedded name, a save_to_disk folder or a Hub id, with a source "
            "column and train (and validation) splits."
        },
    )
    text_template: str = field(
        default="{text}",
        metadata={
            "help": "Python format string over a row's columns giving the training text, "
            "e.g. '{instruction}\\n{output}' for MathInstruct."
        },
    )
    max_length: int = field(default=64, metadata={"help": "Tokens per example after truncation."})
    max_train_samples: int = field(default=0, metadata={"help": "Use only the first N training rows (0: all)."})
    max_eval_samples: int = field(default=0, metadata={"help": "Use only the first N validation rows (0: all)."})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank; 0 trains the full model."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        metadata={"help": "Module names LoRA adapts."},
    )

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.selection_ratio <= 1:
            raise ValueError(f"selection_ratio must lie in (0, 1], got {self.selection_ratio}")
        if self.zo_eps <= 0 or self.zo_directions < 1 or self.zo_dim < 1:
            raise ValueError("zo_eps must be > 0, zo_directions >= 1 and zo_dim >= 1")

    @property
    def large_batch_size(self) -> int:
        """Examples per device looked at each step (forward only): ceil(small batch / selection_ratio)."""
        return math.ceil(round(self.per_device_train_batch_size / self.selection_ratio, 6))
