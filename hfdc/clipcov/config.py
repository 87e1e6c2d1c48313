"""``ClipCovConfig``: data, proxy CLIP, selection and CLIP training settings of ``hfdc clipcov``."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from hfdc.clipcov.allocation import ALLOCATIONS
from hfdc.clipcov.scores import PENALTIES
from hfdc.config import DatasetConfig, HfdcConfig

METHODS = ("clipcov", "random", "clip_score", "semdedup")


@dataclass
class ClipCovConfig(DatasetConfig, HfdcConfig, TrainingArguments):
    """Select an image-caption subset with CLIPCov (or a baseline), publish it, train a CLIP on it.

    The pool comes from ``hfdc.data.load(dataset, **dataset_params)``: the embedded ``shapes`` (noisy
    captions; its generator arguments in ``dataset_params``) or any image-caption data set. The
    TrainingArguments fields configure the CLIP trained on the subset (and the proxy, with
    ``proxy_epochs``); ``seed`` seeds selection, model init and training (and the data order, unless
    Trainer's ``data_seed`` is set).
    """

    pool_split: str = field(default="train", metadata={"help": "Split of `dataset` to select from."})
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
    allocation: str = field(
        default="global",
        metadata={
            "help": "CLIPCov: how classes share the budget. global (the authors' notebook): one ranked list over all "
            "classes, each class's scores lowered after every block it gives, so classes compete; proportional: a "
            "fixed quota per class proportional to its size (hfdc.submodular.group_budgets).",
            "choices": ALLOCATIONS,
        },
    )
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
    proxy_split: str = field(
        default="validation",
        metadata={
            "help": "Split of `dataset` (disjoint from pool_split) the tiny proxy CLIP trains on without proxy_model."
        },
    )
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
    eval_dataset: str | None = field(
        default=None,
        metadata={
            "help": "Labelled zero-shot evaluation data for hfdc.data.load (e.g. imagenet-1k); unset: the eval_split "
            "of `dataset` when it has one."
        },
    )
    eval_split: str = field(default="test", metadata={"help": "Split of the evaluation data."})
    embed_batch_size: int = field(default=64, metadata={"help": "Batch size of proxy embedding."})
    cache_dir: str | None = field(
        default=None, metadata={"help": "Folder for cached proxy embeddings; default <output_dir>/embeddings."}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay false: the collator reads the raw image and caption columns."}
    )

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
