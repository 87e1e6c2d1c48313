"""``MmgenConfig``: task file, stages, models, generation, filter and SFT settings of ``hfdc mmgen``."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from hfdc.config import HfdcConfig
from hfdc.mmgen.evaluate import METRICS
from hfdc.mmgen.prompts import MODES

STAGES = ("partition", "generate", "filter", "train", "evaluate")
TRAIN_DATA = ("filtered", "generated", "reference")


@dataclass
class MmgenConfig(HfdcConfig, TrainingArguments):
    """Partition -> targeted generation -> loss-band filter -> SFT -> evaluation of one MM-Gen task.

    The TrainingArguments fields configure the SFT of the base VLM (the paper: learning_rate 2e-5, cosine,
    warmup 0.03, 3 epochs, full fine-tune); ``seed`` seeds the prompt plan, the generator's samples and training.
    """

    # task and stages
    task: str = field(
        default="mmgen/tasks/shapes_spatial.yaml",
        metadata={
            "help": "Task file (YAML/JSON: skill, keywords, reference, candidates, evaluation); a path, or one "
            "relative to the recipes shipped in hfdc (mmgen/tasks/shapes_spatial.yaml)."
        },
    )
    stages: list[str] = field(
        default_factory=lambda: list(STAGES),
        metadata={
            "help": "Stages to run; a later stage reads an earlier one's saved output from output_dir when it is "
            "left out (partition left out and never run: one subgroup).",
            "choices": STAGES,
        },
    )
    # models
    clip_model: str = field(
        default="tiny",
        metadata={"help": "CLIP for the partition: 'tiny' (hfdc.models.tiny('clip')) or a Hub id / path."},
    )
    keyword_templates: list[str] = field(
        default_factory=lambda: ["a photo of a {}."],
        metadata={"help": "Templates with '{}' for a keyword; a keyword's text embedding is their mean."},
    )
    base_model: str = field(
        default="tiny",
        metadata={
            "help": "The VLM that scores (filter) and is fine-tuned: 'tiny' (hfdc.models.tiny('llava')) or a Hub id / "
            "path (e.g. llava-hf/llava-1.5-7b-hf)."
        },
    )
    # generation
    generator: str = field(
        default="scripted",
        metadata={
            "help": "hfdc.backends spec: 'scripted' (the shapes oracle), 'transformers:<path>' or "
            "'openai:<model>@<base_url>' (key from HFDC_API_KEY / OPENAI_API_KEY / HF_TOKEN)."
        },
    )
    generator_images: bool = field(
        default=True,
        metadata={"help": "Show images to the generator; false for text-only generators (descriptions instead)."},
    )
    mode: str = field(
        default="mmgen",
        metadata={"help": "What to generate: MM-Gen or a baseline.", "choices": MODES},
    )
    total: int = field(default=100, metadata={"help": "Question-answer pairs to aim for (total_gen)."})
    per_candidate: int = field(
        default=1, metadata={"help": "Pairs asked per prompt / candidate image (min_gen_per_candidate)."}
    )
    num_icl: int = field(default=1, metadata={"help": "Reference examples of the same subgroup in each prompt."})
    temperature: float = field(default=0.7, metadata={"help": "Generator sampling temperature (0 = greedy)."})
    max_new_tokens: int = field(default=512, metadata={"help": "Generator token limit per reply."})
    max_fix_attempts: int = field(
        default=3, metadata={"help": "Format-fix requests for a reply that does not parse, before it is skipped."}
    )
    shard_size: int = field(default=32, metadata={"help": "Prompts per saved shard (a rerun skips finished ones)."})
    max_workers: int = field(default=8, metadata={"help": "openai generator: requests in flight at once."})
    generator_cache_dir: str | None = field(
        default=None,
        metadata={"help": "Response cache of the generator (default $HF_HOME/hfdc/generations); reruns are free."},
    )
    oracle_malformed: float = field(
        default=0.2, metadata={"help": "scripted generator: fraction of malformed replies."}
    )
    oracle_wrong: float = field(default=0.1, metadata={"help": "scripted generator: fraction of wrong answers."})
    usd_per_million_prompt_tokens: float = field(
        default=0.0, metadata={"help": "Generator price per million prompt tokens (for the card's cost)."}
    )
    usd_per_million_completion_tokens: float = field(
        default=0.0, metadata={"help": "Generator price per million completion tokens (for the card's cost)."}
    )
    # filter
    keep_low: float = field(default=25.0, metadata={"help": "Filter: lowest loss percentile kept (0-100)."})
    keep_high: float = field(default=75.0, metadata={"help": "Filter: highest loss percentile kept (0-100)."})
    dedup_fraction: float = field(
        default=1.0,
        metadata={
            "help": "Filter: keep this fraction of the band by facility location on MiniLM text embeddings "
            "(1 = no de-duplication)."
        },
    )
    score_batch_size: int = field(default=16, metadata={"help": "Batch size of loss scoring and evaluation."})
    # training and evaluation
    train_data: str = field(
        default="filtered",
        metadata={"help": "What the VLM is fine-tuned on.", "choices": TRAIN_DATA},
    )
    lora_r: int = field(default=0, metadata={"help": "LoRA rank; 0 fine-tunes the full model."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        metadata={"help": "Module names LoRA adapts."},
    )
    max_seq_length: int | None = field(
        default=None, metadata={"help": "SFT: truncate rows to this many tokens (None: no truncation)."}
    )
    eval_metric: str = field(
        default="auto",
        metadata={
            "help": "Evaluation: multiple choice when rows have options (auto), or exact match.",
            "choices": METRICS,
        },
    )
    generated_repo_id: str | None = field(
        default=None, metadata={"help": "Hub repo id for the full generated set (repo_id gets the filtered set)."}
    )
    model_repo_id: str | None = field(default=None, metadata={"help": "Hub repo id for the fine-tuned model."})

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.keep_low < self.keep_high <= 100:
            raise ValueError(
                f"keep_low/keep_high must satisfy 0 <= low < high <= 100, got {self.keep_low}, {self.keep_high}"
            )
        if not 0 < self.dedup_fraction <= 1:
            raise ValueError(f"dedup_fraction must be in (0, 1], got {self.dedup_fraction}")
        for name in ("total", "per_candidate", "shard_size", "max_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
