"""GradmmConfig: the task template, the real subset, the ADMM knobs (published defaults), DP, filtering, evaluation.

GRADMM (Nguyen, Li, Bateni, Mirrokni, Razaviyayn, Mirzasoleiman, ICML 2025, arXiv 2502.17607). Defaults are the
reference implementation's argument defaults (Phi-1.5 on SST-2); its scripts use ``admm_inner_steps=50`` and
``topk=200``, which the GPU recipes set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hfdc.config import DatasetConfig, OutputConfig

MATCHING_LOSSES = ("cos", "l2", "l2_l1")
FILTERS = ("remove", "relabel", "top_score", "none")


@dataclass
class GradmmConfig(DatasetConfig, OutputConfig):
    """Generate readable synthetic text whose LM-head gradient matches that of a few real examples per class."""

    # --- model, data and the task template ---
    model_name_or_path: str = field(
        default="microsoft/phi-1_5",
        metadata={
            "help": "Causal LM with an LM head: tiny:llama (hfdc.models random tiny Llama) or a Hub / local path."
        },
    )
    dataset: str = field(
        default="stanfordnlp/sst2",
        metadata={"help": "Labelled text data set for hfdc.data.load: embedded name, save_to_disk folder or Hub id."},
    )
    split: str = field(default="train", metadata={"help": "Split the real examples are drawn from."})
    text_column: str = field(default="sentence", metadata={"help": "Column holding the text."})
    label_column: str = field(default="label", metadata={"help": "Column holding the class id (0..C-1)."})
    prompt: str = field(
        default=" It was ",
        metadata={"help": "Text put after every example; the label word is predicted after it (pinned in x)."},
    )
    label_words: list[str] = field(
        default_factory=lambda: ["bad", "great"],
        metadata={"help": "One word per class id, each ONE token for the tokenizer (often with a leading space)."},
    )
    decode_prefix: str = field(
        default="The",
        metadata={
            "help": "Context the LM reads before the synthetic tokens in the z-step decoding ({label} = the class's "
            "label word); it is not part of the synthetic text. The reference uses 'The' for SST-2 and a movie-critic "
            "instruction for Rotten Tomatoes."
        },
    )
    # --- target gradients ---
    real_per_class: int = field(
        default=25,
        metadata={"help": "Real examples per class whose mean gradient is matched (the scripts: 50 over 2 classes)."},
    )
    gradient_parameters: str = field(
        default="lm_head",
        metadata={
            "help": "Parameter block whose gradient is matched: lm_head (the output embeddings, tied or not) or a "
            "regex over parameter names."
        },
    )
    # --- ADMM ---
    synthetic_per_class: int = field(default=100, metadata={"help": "Synthetic examples generated per class."})
    generation_batch_size: int = field(
        default=10,
        metadata={"help": "Synthetic sequences optimised together (their mean gradient matches the target): gen_bs."},
    )
    sequence_length: int = field(
        default=0,
        metadata={"help": "Tokens per synthetic sequence, prompt included; 0 = the class's mean real length."},
    )
    admm_steps: int = field(default=30, metadata={"help": "Outer ADMM iterations (z-step, x-step, dual step)."})
    admm_inner_steps: int = field(default=10, metadata={"help": "Adam steps on x per outer iteration (scripts: 50)."})
    rho: float = field(default=0.7, metadata={"help": "ADMM penalty rho (the paper sweeps 0.01-5)."})
    topk: int = field(
        default=50,
        metadata={"help": "z-step: candidate tokens per position, by cosine to x + lambda/rho (scripts: 200)."},
    )
    learning_rate: float = field(default=0.008, metadata={"help": "Adam learning rate of the x-step."})
    lr_step_size: int = field(default=50, metadata={"help": "StepLR: outer iterations between learning-rate decays."})
    lr_gamma: float = field(default=0.9, metadata={"help": "StepLR decay factor."})
    grad_clip: float = field(default=1.0, metadata={"help": "Clip the x-step gradient to this norm; 0 = no clipping."})
    matching_loss: str = field(
        default="cos",
        metadata={
            "help": "cos: mean over tensors of 1 - cos(g_real, g_syn); l2: squared distance; l2_l1: l2 + l1_weight * L1.",
            "choices": MATCHING_LOSSES,
        },
    )
    l1_weight: float = field(default=1e-3, metadata={"help": "matching_loss=l2_l1: weight of the L1 term."})
    perplexity_weight: float = field(
        default=0.0, metadata={"help": "Weight of the LM's next-token loss of z under x in the x-step (0 = off)."}
    )
    init_candidates: int = field(
        default=500,
        metadata={"help": "Random starts of x (Gaussian, scaled to the mean token-embedding norm); the best matches."},
    )
    vocab_filter: bool = field(
        default=True,
        metadata={"help": "z-step vocabulary: only word tokens (no special characters, digits or punctuation only)."},
    )
    max_token_chars: int = field(default=17, metadata={"help": "vocab_filter: drop tokens longer than this."})
    # --- differential privacy ---
    dp: bool = field(
        default=False, metadata={"help": "Clip per-example gradients and add Gaussian noise to each class target."}
    )
    dp_clip_norm: float = field(default=1.0, metadata={"help": "DP: per-example gradient norm bound C."})
    dp_epsilon: float = field(default=0.05, metadata={"help": "DP: epsilon in (0, 1] (Gaussian mechanism)."})
    dp_delta: float = field(default=1e-4, metadata={"help": "DP: delta in (0, 1)."})
    # --- filtering ---
    filter: str = field(
        default="remove",
        metadata={
            "help": "By the LM's few-shot label probability: remove mislabelled rows, relabel them, keep the "
            "top_score rows per class, or none.",
            "choices": FILTERS,
        },
    )
    filter_instruction: str = field(
        default="Given the following text. Only output {labels}.",
        metadata={"help": "Instruction of the filter's few-shot prompt ({labels} = the label words joined by 'or')."},
    )
    filter_shots: int = field(
        default=2,
        metadata={"help": "Few-shot examples per class for the filter, from the real subset (0 with dp=true)."},
    )
    filter_top_n: int = field(default=50, metadata={"help": "filter=top_score: rows kept per class."})
    # --- evaluation ---
    evaluate: bool = field(
        default=True,
        metadata={
            "help": "Fine-tune on the synthetic set, on as many random real rows, and compare with zero-shot accuracy."
        },
    )
    eval_split: str = field(default="validation", metadata={"help": "Held-out split for accuracy."})
    max_eval_samples: int = field(default=0, metadata={"help": "Seeded subset of the held-out split (0 = all)."})
    finetune_epochs: float = field(default=3.0, metadata={"help": "Fine-tuning epochs of the evaluation."})
    finetune_learning_rate: float = field(default=1e-5, metadata={"help": "Fine-tuning learning rate."})
    finetune_batch_size: int = field(default=8, metadata={"help": "Fine-tuning batch size per device."})
    finetune_lora_r: int = field(default=0, metadata={"help": "LoRA rank of the fine-tuning; 0 = full fine-tuning."})
    eval_batch_size: int = field(
        default=32, metadata={"help": "Batch size of scoring (filter, accuracy, perplexity)."}
    )

    def __post_init__(self):
        super().__post_init__()
        positive = ("real_per_class", "synthetic_per_class", "generation_batch_size", "admm_steps", "topk")
        positive += ("admm_inner_steps", "init_candidates", "lr_step_size", "max_token_chars", "eval_batch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("rho", "learning_rate", "lr_gamma", "dp_clip_norm"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("sequence_length", "grad_clip", "l1_weight", "perplexity_weight", "filter_shots"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if len(self.label_words) < 2 or len(set(self.label_words)) < len(self.label_words):
            raise ValueError(
                f"label_words must name at least 2 distinct words (one per class), got {self.label_words}"
            )
        if self.dp:
            if not 0 < self.dp_epsilon <= 1:
                raise ValueError(
                    f"dp_epsilon must lie in (0, 1] (the Gaussian mechanism's bound), got {self.dp_epsilon}"
                )
            if not 0 < self.dp_delta < 1:
                raise ValueError(f"dp_delta must lie in (0, 1), got {self.dp_delta}")
            if self.filter != "none" and self.filter_shots:
                raise ValueError(
                    "dp=true with filter_shots > 0 would show real examples to the filter outside the DP guarantee; "
                    "set filter_shots=0 (zero-shot filter) or filter=none"
                )
        if self.filter == "top_score" and self.filter_top_n < 1:
            raise ValueError(f"filter=top_score needs filter_top_n >= 1, got {self.filter_top_n}")
