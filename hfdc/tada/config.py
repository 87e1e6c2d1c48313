"""Configuration of ``hfdc tada``: discovery and training (shared with USEFUL), the generator, which rows to augment."""

from __future__ import annotations

from dataclasses import dataclass, field

from hfdc.config import parse_json_object
from hfdc.useful import ROWS, DiscoveryConfig

ADDITIONS = ("sdedit", "duplicate")
DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class TadaConfig(DiscoveryConfig):
    """Find slow-learnable examples, add SDEdit variants of only those, retrain from scratch (TADA, arXiv 2505.21574)."""

    dataset: str = field(
        default="digits",
        metadata={"help": "Embedded image data set (digits, shapes) or a Hub image classification data set id."},
    )
    model: str = field(
        default="convnet",
        metadata={"help": "Image classifier (hfdc.models.classifier_for).", "choices": ("convnet", "resnet")},
    )
    augment: str = field(
        default="targeted",
        metadata={
            "help": "Rows to augment: targeted (slow-learnable), random (same count), full (every row, the baseline), none.",
            "choices": ROWS,
        },
    )
    addition: str = field(
        default="sdedit",
        metadata={
            "help": "What is added for each chosen row: sdedit (synthetic variants, TADA) or duplicate (copies of the "
            "real row, no generation: the arm that separates which rows from what is added).",
            "choices": ADDITIONS,
        },
    )
    generator: str = field(
        default="ddpm",
        metadata={
            "help": "ddpm (train a small class-conditional UNet2DModel DDPM first), tiny-img2img (random weights, tests), "
            "a folder with a UNet2DModel + scheduler_config.json, or a diffusers img2img pipeline id/folder."
        },
    )
    torch_dtype: str = field(
        default="float32",
        metadata={
            "help": "dtype a loaded generator (img2img pipeline or UNet folder) runs in; float16 / bfloat16 on GPU.",
            "choices": DTYPES,
        },
    )
    strength: float = field(
        default=0.4,
        metadata={
            "help": "SDEdit strength: noise to strength * T, then denoise (TADA used GLIDE; 0.3-0.5 keeps the class)."
        },
    )
    num_inference_steps: int = field(
        default=50, metadata={"help": "Scheduler steps for the full diffusion; strength * this many are run."}
    )
    guidance_scale: float = field(
        default=7.5, metadata={"help": "Classifier-free guidance of text-conditioned img2img pipelines."}
    )
    prompt_template: str = field(
        default="a photo of a {label}", metadata={"help": "Prompt of img2img pipelines; {label} is the class name."}
    )
    generation_image_size: int = field(
        default=0,
        metadata={
            "help": "img2img pipelines: resize images to this side before generation (512 for Stable Diffusion); 0 = as is."
        },
    )
    images_per_example: int = field(default=1, metadata={"help": "Synthetic variants per augmented example."})
    generation_batch_size: int = field(default=64, metadata={"help": "Examples per generator call."})
    shard_size: int = field(
        default=256, metadata={"help": "Examples per saved shard; finished shards are skipped on a rerun."}
    )
    ddpm_params: str = field(
        default="{}",
        metadata={
            "help": 'generator=ddpm: JSON object of UNet2DModel overrides (e.g. {"block_out_channels": [16, 32, 32]}).'
        },
    )
    ddpm_epochs: int = field(default=100, metadata={"help": "generator=ddpm: training epochs of the DDPM."})
    ddpm_batch_size: int = field(default=64, metadata={"help": "generator=ddpm: batch size."})
    ddpm_learning_rate: float = field(
        default=1e-3, metadata={"help": "generator=ddpm: AdamW learning rate (cosine schedule, warm-up)."}
    )
    ddpm_conditional: bool = field(
        default=True, metadata={"help": "generator=ddpm: class-conditional (num_class_embeds) or unconditional UNet."}
    )
    ddpm_repo_id: str | None = field(
        default=None, metadata={"help": "generator=ddpm: Hub repo id to push the trained DDPM to."}
    )

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 < self.strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {self.strength}")
        if self.images_per_example < 1:
            raise ValueError(f"images_per_example must be >= 1, got {self.images_per_example}")
        self.ddpm_params = parse_json_object("ddpm_params", self.ddpm_params)
        if self.dataset == "feature_patches":
            raise ValueError("TADA augments images: use dataset='shapes' or 'digits' (or an image data set)")
