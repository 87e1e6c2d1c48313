"""Configs of ``hfdc regap train|measure|safety``: RegapConfig (TrainingArguments), GapConfig, SafetyConfig.

ReGap (Yang, Stice, Payani, Mirzasoleiman 2025, arXiv 2505.24208): regularise the modality gap between image
and text token states during LLaVA stage-1 pretraining (projector only) to make the LVLM safer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from hfdc.config import DatasetConfig, HfdcConfig, OutputConfig, parse_json_object
from hfdc.regap.data import PROMPT_FORMATS
from hfdc.regap.probe_images import EVAL_KINDS, IMAGE_KINDS
from hfdc.regap.regularizer import DISTANCES


@dataclass
class PairArguments:
    """How image-caption rows become LLaVA inputs (``hfdc.regap.data``)."""

    image_column: str = field(
        default="image", metadata={"help": "Column of images (PIL, or paths under image_folder)."}
    )
    caption_column: str = field(
        default="caption",
        metadata={"help": "Column of captions (text, or LLaVA 'conversations' lists whose gpt turn is the caption)."},
    )
    image_folder: str = field(
        default="", metadata={"help": "Folder the image paths are relative to (LCS-558K's images); '' for PIL images."}
    )
    prompt_format: str = field(
        default="plain",
        metadata={
            "help": "plain: LLaVA stage-1 '<image>\\ncaption'; chat: the processor's chat template with the "
            "instruction as the user turn and the caption as the reply.",
            "choices": PROMPT_FORMATS,
        },
    )
    instruction: str = field(default="", metadata={"help": "User text after the image in the chat format."})
    max_length: int = field(default=512, metadata={"help": "Tokens per row (image placeholders included)."})
    gap_pairs: int = field(
        default=100, metadata={"help": "Image-caption pairs of the held-out split the gap (MIR) is measured on."}
    )
    gap_split: str = field(default="validation", metadata={"help": "Split the gap pairs come from."})


@dataclass
class SafetyArguments:
    """The unsafe-rate evaluation (``hfdc.regap.safety``)."""

    safety_prompts: str = field(
        default="embedded",
        metadata={
            "help": "Harmful instructions: 'embedded' (40 short generic requests) or a data set for hfdc.data.load "
            "(MM-SafetyBench / FigStep style)."
        },
    )
    safety_prompts_params: str = field(
        default="{}", metadata={"help": "JSON object of hfdc.data.load parameters for safety_prompts."}
    )
    safety_split: str = field(default="test", metadata={"help": "Split of the safety_prompts data set."})
    safety_prompt_column: str = field(
        default="", metadata={"help": "Prompt column of the data set ('' = first of question/instruction/prompt/...)."}
    )
    safety_max_prompts: int = field(default=0, metadata={"help": "Use only the first N prompts (0: all)."})
    safety_judge: str = field(
        default="keywords",
        metadata={
            "help": "keywords | classifier:<path> | llm:<backend spec> (transformers:<path>, openai:<model>@<url>); "
            "'none' skips the safety evaluation in `regap train`."
        },
    )
    safety_image_kinds: list[str] = field(
        default_factory=lambda: list(IMAGE_KINDS),
        metadata={
            "help": "Images paired with each prompt: blank, random, typographic (the prompt drawn as text), none "
            "(text only), dataset (the safety data set's own images).",
            "choices": EVAL_KINDS,
        },
    )
    safety_max_new_tokens: int = field(default=48, metadata={"help": "Tokens generated per response (greedy)."})
    safety_batch_size: int = field(default=8, metadata={"help": "Prompts generated together (left padding)."})

    def check_safety(self) -> None:
        self.safety_prompts_params = parse_json_object("safety_prompts_params", self.safety_prompts_params)
        if self.safety_max_new_tokens < 1 or self.safety_batch_size < 1:
            raise ValueError("safety_max_new_tokens and safety_batch_size must be >= 1")


@dataclass
class RegapConfig(PairArguments, SafetyArguments, DatasetConfig, HfdcConfig, TrainingArguments):
    """TrainingArguments for RegapTrainer (LLaVA stage 1: only the projector trains) and `hfdc regap train`."""

    # --- model ---
    model_name_or_path: str = field(
        default="tiny:llava",
        metadata={
            "help": "LLaVA-style model to pretrain: tiny:llava (random tiny Llava), or a folder / Hub id. Ignored "
            "when vision_tower and language_model are set."
        },
    )
    vision_tower: str = field(
        default="",
        metadata={
            "help": "Build a fresh LLaVA from parts: a CLIP folder / Hub id, or tiny:clip (a tiny CLIP trained "
            "first on the data set's captions, kept in <output_dir>/vision_tower)."
        },
    )
    language_model: str = field(
        default="", metadata={"help": "Causal LM folder / Hub id joined to vision_tower through a fresh projector."}
    )
    vision_feature_layer: int = field(
        default=-2, metadata={"help": "Vision tower layer whose patch features feed the projector (LLaVA-1.5: -2)."}
    )
    vision_tower_epochs: float = field(
        default=10.0, metadata={"help": "Contrastive epochs of the tiny:clip vision tower on the captions."}
    )
    vision_tower_config: str = field(
        default="{}",
        metadata={"help": "JSON overrides of hfdc.models.tiny('clip') for tiny:clip (e.g. vision_config sizes)."},
    )
    # --- regulariser ---
    regap_weight: float = field(
        default=1.0,
        metadata={
            "help": "alpha * D matches regap_weight * LM loss at the end of the warm-up; 0 turns the regulariser "
            "off (plain stage-1 pretraining, the baseline)."
        },
    )
    regap_alpha: float = field(
        default=0.0, metadata={"help": "Fixed alpha (> 0 skips the warm-up); 0 = set alpha by the warm-up."}
    )
    regap_warmup_steps: int = field(
        default=10, metadata={"help": "Optimizer steps over which alpha is estimated before it is frozen."}
    )
    regap_distance: str = field(
        default="mean",
        metadata={
            "help": "Surrogate gap D: mean (squared distance of the token means) or frechet_diag (adds the "
            "per-dimension std difference: Frechet distance of diagonal Gaussians).",
            "choices": DISTANCES,
        },
    )
    regap_layer: int = field(
        default=1,
        metadata={"help": "LLM hidden-state index D is taken at: 1 = first LLM layer (paper), 0 = projector output."},
    )
    regap_rescale: bool = field(
        default=True, metadata={"help": "Divide D by the squared mean text-token norm of the batch (scale-free)."}
    )
    max_train_samples: int = field(default=0, metadata={"help": "Use only the first N training rows (0: all)."})
    max_eval_samples: int = field(default=0, metadata={"help": "Use only the first N validation rows (0: all)."})

    def __post_init__(self):
        super().__post_init__()
        self.check_safety()
        self.vision_tower_config = parse_json_object("vision_tower_config", self.vision_tower_config)
        if bool(self.vision_tower) != bool(self.language_model):
            raise ValueError("set both vision_tower and language_model to build a LLaVA from parts, or neither")
        if self.regap_weight < 0 or self.regap_alpha < 0:
            raise ValueError("regap_weight and regap_alpha must be >= 0")
        if self.regap_layer < 0:
            raise ValueError(f"regap_layer must be >= 0 (0 = projector output), got {self.regap_layer}")

    @property
    def regularise(self) -> bool:
        """Whether the regulariser is on (regap_weight > 0 or a fixed regap_alpha)."""
        return self.regap_weight > 0 or self.regap_alpha > 0


@dataclass
class GapConfig(PairArguments, DatasetConfig, OutputConfig):
    """`hfdc regap measure`: per-layer modality gap and MIR of a LLaVA-style model on image-caption pairs."""

    model_name_or_path: str = field(
        default="tiny:llava", metadata={"help": "LLaVA-style model: tiny:llava, or a folder / Hub id."}
    )
    batch_size: int = field(default=8, metadata={"help": "Pairs per forward pass."})


@dataclass
class SafetyConfig(SafetyArguments, OutputConfig):
    """`hfdc regap safety`: unsafe rate of a LLaVA-style model on harmful instructions with each image kind."""

    model_name_or_path: str = field(
        default="tiny:llava", metadata={"help": "LLaVA-style model: tiny:llava, or a folder / Hub id."}
    )

    def __post_init__(self):
        super().__post_init__()
        self.check_safety()


__all__ = ["GapConfig", "PairArguments", "RegapConfig", "SafetyArguments", "SafetyConfig"]
