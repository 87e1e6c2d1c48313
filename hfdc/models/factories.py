"""Tiny random-weight models built from configs, one builder per kind; sizes in `DEFAULTS`."""

import copy
import dataclasses
import inspect

import torch
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPVisionConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    PreTrainedConfig,
)

from hfdc.models.classifiers import (
    ConvNetConfig,
    ConvNetForImageClassification,
    ResNetConfig,
    ResNetForImageClassification,
)
from hfdc.models.tokenizer import SPECIAL_TOKENS, VOCAB_SIZE, tiny_tokenizer
from hfdc.models.two_layer_cnn import TwoLayerCNN, TwoLayerCNNConfig

PAD_ID, BOS_ID, IMAGE_TOKEN_ID, EOS_ID = range(len(SPECIAL_TOKENS))

_TEXT = dict(
    vocab_size=VOCAB_SIZE,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    pad_token_id=PAD_ID,
    bos_token_id=BOS_ID,
    eos_token_id=EOS_ID,
)
_LLAMA = dict(_TEXT, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False)
_CLIP_TEXT = dict(_TEXT, max_position_embeddings=77)
_CLIP_VISION = dict(
    image_size=32,
    patch_size=8,
    num_channels=3,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
)

DEFAULTS: dict[str, dict] = {
    "llama": _LLAMA,
    "llava": dict(
        text_config=dict(_LLAMA, model_type="llama"),
        vision_config=dict(_CLIP_VISION, model_type="clip_vision_model"),
        image_token_id=IMAGE_TOKEN_ID,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    ),
    "clip": dict(text_config=_CLIP_TEXT, vision_config=_CLIP_VISION, projection_dim=16),
    "unet": dict(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        attention_head_dim=8,
        num_class_embeds=None,
    ),
    "img2img": dict(
        unet=dict(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(16, 32),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=4,
            norm_num_groups=8,
        ),
        vae=dict(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            block_out_channels=(8, 16),
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            norm_num_groups=8,
            sample_size=32,
        ),
        text_encoder=_CLIP_TEXT,
        scheduler=dict(
            num_train_timesteps=1000,
            beta_schedule="scaled_linear",
            beta_start=0.00085,
            beta_end=0.012,
            clip_sample=False,
            set_alpha_to_one=False,
            steps_offset=1,
        ),
    ),
    "convnet": dict(num_channels=3, image_size=32, width=16, depth=2, num_labels=10),
    "resnet": dict(num_channels=3, image_size=32, width=16, depths=(1, 1, 1), num_labels=10),
    "two_layer_cnn": dict(dim=32, filters=4, activation="cubic", init_std=0.05, num_labels=2),
}
"""Default config of each kind; `tiny(kind, **overrides)` merges overrides into these (nested config dicts key by key)."""

KINDS = tuple(DEFAULTS)


def _merge(defaults: dict, overrides: dict, allowed: set[str], where: str) -> dict:
    """Return defaults updated by overrides; nested dicts merge; a key outside `allowed` is a ValueError."""
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"Unknown override(s) {unknown} for {where}; valid keys: {sorted(allowed)}.")
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _config_keys(config_class: type[PreTrainedConfig]) -> set[str]:
    """Keyword arguments a transformers config class accepts (its dataclass fields plus `num_labels`)."""
    return {field.name for field in dataclasses.fields(config_class)} | {"num_labels"}


def _init_keys(cls: type) -> set[str]:
    """Keyword arguments of a diffusers class's `__init__` (its registered config)."""
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def _check_nested(config: dict, kind: str, nested: dict[str, type]) -> None:
    """Validate the keys of nested override dicts (e.g. llava's text_config) against their classes."""
    for key, config_class in nested.items():
        _merge({}, config[key], _config_keys(config_class) | {"model_type"}, f"{kind}.{key}")


def _llama(overrides: dict):
    return LlamaForCausalLM(LlamaConfig(**_merge(DEFAULTS["llama"], overrides, _config_keys(LlamaConfig), "llama")))


def _llava(overrides: dict):
    config = _merge(DEFAULTS["llava"], overrides, _config_keys(LlavaConfig), "llava")
    _check_nested(config, "llava", {"text_config": LlamaConfig, "vision_config": CLIPVisionConfig})
    if config["image_token_id"] >= config["text_config"]["vocab_size"]:
        raise ValueError(
            f"image_token_id={config['image_token_id']} must be below text_config.vocab_size="
            f"{config['text_config']['vocab_size']} (the token is embedded by the text model)."
        )
    return LlavaForConditionalGeneration(LlavaConfig(**config))


def _clip(overrides: dict):
    config = _merge(DEFAULTS["clip"], overrides, _config_keys(CLIPConfig), "clip")
    _check_nested(config, "clip", {"text_config": CLIPTextConfig, "vision_config": CLIPVisionConfig})
    text = config["text_config"]
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if not 0 <= text[name] < text["vocab_size"]:
            raise ValueError(f"clip text_config.{name}={text[name]} must lie inside vocab_size={text['vocab_size']}.")
    return CLIPModel(CLIPConfig(**config))


def _unet(overrides: dict):
    from diffusers import UNet2DModel  # diffusers is imported only by the kinds that need it (slow import)

    return UNet2DModel(**_merge(DEFAULTS["unet"], overrides, _init_keys(UNet2DModel), "unet"))


def _img2img(overrides: dict):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionImg2ImgPipeline, UNet2DConditionModel

    config = _merge(DEFAULTS["img2img"], overrides, set(DEFAULTS["img2img"]), "img2img")
    for key, cls in {"unet": UNet2DConditionModel, "vae": AutoencoderKL, "scheduler": DDIMScheduler}.items():
        _merge({}, config[key], _init_keys(cls), f"img2img.{key}")
    _merge({}, config["text_encoder"], _config_keys(CLIPTextConfig), "img2img.text_encoder")
    text_encoder = CLIPTextModel(CLIPTextConfig(**config["text_encoder"]))
    return StableDiffusionImg2ImgPipeline(
        vae=AutoencoderKL(**config["vae"]),
        text_encoder=text_encoder,
        tokenizer=tiny_tokenizer(add_eos=True, model_max_length=text_encoder.config.max_position_embeddings),
        unet=UNet2DConditionModel(**config["unet"]),
        scheduler=DDIMScheduler(**config["scheduler"]),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _convnet(overrides: dict):
    config = _merge(DEFAULTS["convnet"], overrides, _config_keys(ConvNetConfig), "convnet")
    return ConvNetForImageClassification(ConvNetConfig(**config))


def _resnet(overrides: dict):
    config = _merge(DEFAULTS["resnet"], overrides, _config_keys(ResNetConfig), "resnet")
    return ResNetForImageClassification(ResNetConfig(**config))


def _two_layer_cnn(overrides: dict):
    config = _merge(DEFAULTS["two_layer_cnn"], overrides, _config_keys(TwoLayerCNNConfig), "two_layer_cnn")
    return TwoLayerCNN(TwoLayerCNNConfig(**config))


_BUILDERS = {
    "llama": _llama,
    "llava": _llava,
    "clip": _clip,
    "unet": _unet,
    "img2img": _img2img,
    "convnet": _convnet,
    "resnet": _resnet,
    "two_layer_cnn": _two_layer_cnn,
}
CLASSIFIERS = ("two_layer_cnn", "convnet", "resnet")


def check_kind(kind: str) -> None:
    """Raise a ValueError naming the valid kinds when `kind` is not one of them."""
    if kind not in DEFAULTS:
        raise ValueError(f"Unknown model kind {kind!r}; choose one of {list(KINDS)}.")


def tiny(kind: str, seed: int = 0, **config_overrides):
    """A tiny random-weight model of `kind` (see `KINDS`), initialised from `torch.manual_seed(seed)`.

    Overrides update `DEFAULTS[kind]` (nested configs as dicts, e.g. `text_config={"hidden_size": 64}`);
    an unknown key is a ValueError listing the valid ones. "img2img" returns the whole
    `StableDiffusionImg2ImgPipeline`. Models come in eval mode; the global RNG state is left untouched.
    """
    check_kind(kind)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _BUILDERS[kind](config_overrides)
    if isinstance(model, torch.nn.Module):
        model.eval()
    return model


def classifier_for(kind: str, dataset, seed: int = 0, **config_overrides):
    """A fresh classifier of ``kind`` (one of :data:`CLASSIFIERS`) sized for ``dataset``'s ClassLabel ``label``
    and its inputs: the patch dimension of an ``x`` column (two_layer_cnn) or the side and channels of an
    Image ``image`` column (convnet, resnet). The same ``seed`` gives the same initial weights."""
    from hfdc.models.images import image_mode

    if kind not in CLASSIFIERS:
        raise ValueError(f"classifier kind must be one of {CLASSIFIERS}, got {kind!r}")
    sizes = {"num_labels": dataset.features["label"].num_classes}
    first = dataset.with_format(None)[0]
    if kind == "two_layer_cnn":
        if "x" not in dataset.column_names:
            raise ValueError(
                "two_layer_cnn needs feature patches (column 'x'); use dataset='feature_patches' or convnet"
            )
        sizes["dim"] = len(first["x"][0])
    else:
        if "image" not in dataset.column_names:
            raise ValueError(f"{kind} needs an Image column 'image'; use two_layer_cnn for feature patches")
        sizes["image_size"] = first["image"].size[0]
        sizes["num_channels"] = 1 if image_mode(dataset) == "L" else 3
    return tiny(kind, seed=seed, **{**sizes, **config_overrides})
