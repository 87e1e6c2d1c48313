"""Offline processors matching the tiny models, and the dataset transform that feeds them images."""

from collections.abc import Callable

from transformers import CLIPProcessor, LlavaProcessor
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from hfdc.models.factories import DEFAULTS, check_kind
from hfdc.models.tokenizer import CHAT_TEMPLATE, tiny_tokenizer


def _clip_image_processor(image_size: int) -> CLIPImageProcessorPil:
    """CLIP preprocessing (resize shortest edge, centre crop, CLIP mean/std) to `image_size` squares."""
    return CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )


def _pixel_processor(image_size: int, num_channels: int) -> ViTImageProcessorPil:
    """Resize to `image_size` squares and scale pixels to [-1, 1]: x = (p / 255 - 0.5) / 0.5."""
    return ViTImageProcessorPil(
        size={"height": image_size, "width": image_size},
        image_mean=[0.5] * num_channels,
        image_std=[0.5] * num_channels,
        do_convert_rgb=num_channels == 3,
    )


def tiny_processor(kind: str, image_size: int | None = None, num_channels: int = 3):
    """The tokenizer / processor matching `tiny(kind)`, built offline and deterministically.

    llama: byte-level BPE `PreTrainedTokenizerFast` with chat template; llava: `LlavaProcessor`; clip:
    `CLIPProcessor`; img2img: the pipeline's tokenizer (ends with `</s>`, 77 tokens max); unet, convnet,
    resnet: an image processor to [-1, 1] pixels. `image_size` (default: the kind's default) and
    `num_channels` (1 for grayscale, image kinds only) must match the model's config.
    """
    check_kind(kind)
    if kind == "llama":
        return tiny_tokenizer()
    if kind == "llava":
        vision = DEFAULTS["llava"]["vision_config"]
        return LlavaProcessor(
            image_processor=_clip_image_processor(image_size or vision["image_size"]),
            tokenizer=tiny_tokenizer(),
            patch_size=vision["patch_size"],
            vision_feature_select_strategy=DEFAULTS["llava"]["vision_feature_select_strategy"],
            num_additional_image_tokens=1,
            chat_template=CHAT_TEMPLATE,
        )
    if kind == "clip":
        text = DEFAULTS["clip"]["text_config"]
        return CLIPProcessor(
            image_processor=_clip_image_processor(image_size or DEFAULTS["clip"]["vision_config"]["image_size"]),
            tokenizer=tiny_tokenizer(add_eos=True, model_max_length=text["max_position_embeddings"]),
        )
    if kind == "img2img":
        text = DEFAULTS["img2img"]["text_encoder"]
        return tiny_tokenizer(add_eos=True, model_max_length=text["max_position_embeddings"])
    default_size = DEFAULTS[kind].get("sample_size", DEFAULTS[kind].get("image_size"))
    return _pixel_processor(image_size or default_size, num_channels)


def image_transform(processor, image_column: str = "image") -> Callable[[dict], dict]:
    """A `Dataset.set_transform` function: replaces `image_column` by `pixel_values` tensors from `processor`.

    Other columns pass through unchanged. With `Trainer`, set `remove_unused_columns=False` (otherwise the
    Trainer drops the image column before the transform sees it).
    """
    image_processor = getattr(processor, "image_processor", processor)

    def transform(batch: dict) -> dict:
        if image_column not in batch:
            raise ValueError(f"image_transform: column {image_column!r} not found; columns are {list(batch)}.")
        out = {key: value for key, value in batch.items() if key != image_column}
        out["pixel_values"] = image_processor(images=batch[image_column], return_tensors="pt")["pixel_values"]
        return out

    return transform
