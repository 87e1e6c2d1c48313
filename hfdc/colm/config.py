"""ColmConfig: TrainingArguments plus the CoLM selection knobs and what `hfdc colm` trains on.

CoLM (Nguyen et al., ICLR 2025, arXiv 2407.19580): each step, select a small batch from a large one by
facility location on zeroth-order per-example gradient features, and train on the small batch only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from transformers import TrainingArguments

from hfdc.colm.features import LORA_MATRICES
from hfdc.config import DatasetConfig, HfdcConfig
from hfdc.submodular import BUDGET_MODES, METRICS

SPARSIFY = ("top", "random", "smallest")
FEATURE_OPTIMIZERS = ("adam", "sgd")
DIRECTIONS = ("fixed", "per_step")
MOMENTS_FROM = ("large_sources", "selected")
DTYPES = ("float32", "bfloat16", "float16", "auto")


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
    zo_lora_matrices: str = field(
        default="B",
        metadata={
            "help": "On a PEFT model, which LoRA matrices of the block: B (the reference code) or AB.",
            "choices": LORA_MATRICES,
        },
    )
    zo_direction: str = field(
        default="fixed",
        metadata={
            "help": "Gaussian directions z: fixed (drawn once per run from seed, the reference code) or per_step "
            "(fresh each optimizer step). With one direction every feature is a multiple of z, so the selection "
            "is 1-D k-medoids on the directional derivatives; zo_directions > 1 spans a subspace.",
            "choices": DIRECTIONS,
        },
    )
    zo_eps: float = field(default=1e-3, metadata={"help": "Perturbation size of the two-sided zeroth-order estimate."})
    zo_directions: int = field(
        default=1,
        metadata={
            "help": "Gaussian directions per step (2 passes of the block's layer onwards each): d-dimensional features."
        },
    )
    zo_float32: bool = field(
        default=True,
        metadata={
            "help": "Run the perturbed passes (the block's layer onwards; the whole model with zo_reuse_prefix=false) "
            "in float32 with autocast off: bf16 / fp16 cannot represent a zo_eps perturbation nor a 1e-3 loss "
            "difference (19% / 2% slope error on a 12-layer model). The weights are cast back exactly."
        },
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
    moments_from: str = field(
        default="large_sources",
        metadata={
            "help": "Rows whose features update the Adam moments after each selection: the selected rows of the "
            "large sources (the paper and reference code) or every selected row, kept sources included.",
            "choices": MOMENTS_FROM,
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
            "help": "Python format string over a row's columns giving the trained text (after prompt_template), "
            "e.g. '{output}' for MathInstruct; the tokenizer's EOS is appended and trained."
        },
    )
    prompt_template: str = field(
        default="",
        metadata={
            "help": "Python format string of a prompt put before text_template; its tokens are masked out of the "
            "loss (labels -100). Empty: the whole text is trained."
        },
    )
    dtype: str = field(
        default="float32",
        metadata={"help": "Precision the model's weights are loaded in (auto: the checkpoint's).", "choices": DTYPES},
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
