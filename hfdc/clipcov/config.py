"""``ClipCovConfig``: data, proxy CLIP, selection and CLIP training settings of ``hfdc clipcov``."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from hfdc.clipcov.scores import PENALTIES
from hfdc.config import HfdcConfig

METHODS = ("clipcov", "random", "clip_score", "semdedup")


@dataclass
class ClipCovConfig(HfdcConfig, TrainingArguments):
    """Select an image-caption subset with CLIPCov (or a baseline), publish it, train a CLIP on it.

    The TrainingArguments fields configure the CLIP trained on the subset (and the proxy, with
    ``proxy_epochs``); ``seed`` seeds selection, model init and training.
    """

    data: str = field(
        default="shapes",
        metadata={
            "help": "'shapes' (hfdc.data, with train/validation/test) or a datasets builder / Hub id read with "
            "datasets.load_dataset (e.g. 'parquet' with data_files) for real image-caption data."
        },
    )
    data_files: list[str] | None = field(
        default=None,
        metadata={"help": "Files for a builder data set (e.g. CC3M-style parquet shards: /data/cc3m/*.parquet)."},
    )
    data_split: str = field(default="train", metadata={"help": "Split of `data` to select from."})
    n_train: int = field(default=2000, metadata={"help": "shapes: rows in the pool to select from (train split)."})
    n_validation: int = field(
        default=500, metadata={"help": "shapes: rows of the disjoint split the proxy trains on."}
    )
    n_test: int = field(default=500, metadata={"help": "shapes: rows of the labelled zero-shot test split."})
    noise_fraction: float = field(default=0.3, metadata={"help": "shapes: fraction of rows with a wrong caption."})
    data_seed: int = field(default=0, metadata={"help": "shapes: seed of the generated data."})
    image_column: str = field(default="image", metadata={"help": "Column holding the images."})
    caption_column: str = field(default="noisy_caption", metadata={"help": "Column holding the captions."})
    label_column: str = field(
        default="label",
        metadata={"help": "ClassLabel column of the evaluation data (and of the pool when use_labels is true)."},
    )
    use_labels: bool = field(
        default=False, metadata={"help": "Use the pool's label_column as classes instead of zero-shot latent classes."}
    )
    class_names: list[str] | None = field(
        default=None,
        metadata={
            "help": "Class names for latent classes and zero-shot evaluation; default: the label column's names."
        },
    )
    prompt_templates: list[str] = field(
        default_factory=lambda: ["a photo of a {}."],
        metadata={"help": "Prompt templates with '{}' for the class name; a class's text embedding is their mean."},
    )
    method: str = field(default="clipcov", metadata={"help": "Selection method.", "choices": METHODS})
    fraction: float = field(default=0.1, metadata={"help": "Budget: fraction of the pool to keep, in (0, 1]."})
    threshold: float = field(
        default=0.0,
        metadata={
            "help": "CLIPCov: cross similarities below this are set to 0; <= -1 disables (faster, factorised sums)."
        },
    )
    block_size: int = field(default=200, metadata={"help": "CLIPCov: greedy picks per class between score updates."})
    penalty: str = field(
        default="max",
        metadata={"help": "CLIPCov: cross-class penalty over other classes' centroids.", "choices": PENALTIES},
    )
    num_clusters: int | None = field(default=None, metadata={"help": "SemDeDup: k-means clusters (default sqrt(N))."})
    proxy_model: str | None = field(
        default=None,
        metadata={
            "help": "Pretrained proxy CLIP (Hub id or path, e.g. openai/clip-vit-base-patch32); unset trains a tiny "
            "proxy on the disjoint proxy_split first and saves it with a model card."
        },
    )
    proxy_split: str = field(default="validation", metadata={"help": "shapes: split the proxy CLIP trains on."})
    proxy_epochs: float = field(default=30.0, metadata={"help": "Epochs of proxy training."})
    model: str = field(
        default="tiny",
        metadata={
            "help": "CLIP trained on the subset: 'tiny' (hfdc.models.tiny('clip')) or a Hub id / path whose config "
            "initialises a CLIPModel from scratch (e.g. openai/clip-vit-base-patch32)."
        },
    )
    train_subset: bool = field(
        default=True, metadata={"help": "Train a CLIP on the subset and evaluate it zero-shot."}
    )
    eval_data: str | None = field(
        default=None,
        metadata={"help": "Labelled zero-shot evaluation data (datasets.load_dataset id); unset: shapes' test split."},
    )
    eval_split: str = field(default="test", metadata={"help": "Split of the evaluation data."})
    embed_batch_size: int = field(default=64, metadata={"help": "Batch size of proxy embedding."})
    cache_dir: str | None = field(
        default=None, metadata={"help": "Folder for cached proxy embeddings; default <output_dir>/embeddings."}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay false: the collator reads the raw image and caption columns."}
    )
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Trainer loggers."})

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
