"""Tiny random-weight model factories and matching offline processors, for tests and CPU defaults.

`tiny(kind, seed=0, **overrides)` builds a model; `tiny_processor(kind)` its tokenizer/processor.
Kinds: llama, llava, clip, unet, img2img, convnet, resnet.
"""

from hfdc.models.classifiers import (
    ConvNetConfig,
    ConvNetForImageClassification,
    ResNetConfig,
    ResNetForImageClassification,
)
from hfdc.models.factories import DEFAULTS, KINDS, tiny
from hfdc.models.processors import image_transform, tiny_processor
from hfdc.models.tokenizer import tiny_tokenizer

__all__ = [
    "DEFAULTS",
    "KINDS",
    "ConvNetConfig",
    "ConvNetForImageClassification",
    "ResNetConfig",
    "ResNetForImageClassification",
    "image_transform",
    "tiny",
    "tiny_processor",
    "tiny_tokenizer",
]
