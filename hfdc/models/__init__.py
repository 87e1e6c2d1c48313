"""Tiny random-weight model factories, offline processors and the images helper, for tests and CPU defaults.

`tiny(kind, seed=0, **overrides)` builds a model; `tiny_processor(kind)` its tokenizer/processor;
`classifier_for(kind, dataset)` a classifier sized for a data set; `load_causal_lm(name)` a causal LM + tokenizer
("tiny:llama" or a Hub id / folder); `mini_llava(vision_tower, language_model)` joins a real CLIP tower and a
causal LM into a LLaVA; `hfdc.models.images` converts images.
Kinds: llama, llava, clip, unet, img2img, convnet, resnet, two_layer_cnn.
"""

from hfdc.models.causal_lm import TINY_LLAMA, load_causal_lm
from hfdc.models.classifiers import (
    ConvNetConfig,
    ConvNetForImageClassification,
    ResNetConfig,
    ResNetForImageClassification,
)
from hfdc.models.factories import CLASSIFIERS, DEFAULTS, KINDS, classifier_for, tiny
from hfdc.models.images import image_transform, pixel_values, to_pil, to_tensor
from hfdc.models.mini_llava import llava_chat_template, mini_llava
from hfdc.models.processors import tiny_processor
from hfdc.models.tokenizer import tiny_tokenizer
from hfdc.models.two_layer_cnn import TwoLayerCNN, TwoLayerCNNConfig

__all__ = [
    "CLASSIFIERS",
    "DEFAULTS",
    "KINDS",
    "TINY_LLAMA",
    "ConvNetConfig",
    "ConvNetForImageClassification",
    "ResNetConfig",
    "ResNetForImageClassification",
    "TwoLayerCNN",
    "TwoLayerCNNConfig",
    "classifier_for",
    "image_transform",
    "load_causal_lm",
    "llava_chat_template",
    "mini_llava",
    "pixel_values",
    "tiny",
    "tiny_processor",
    "tiny_tokenizer",
    "to_pil",
    "to_tensor",
]
