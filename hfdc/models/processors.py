"""Offline tokenizers / processors matching the tiny text and vision-language models."""

from transformers import CLIPProcessor, LlavaProcessor
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from hfdc.models.factories import DEFAULTS, check_kind
from hfdc.models.tokenizer import CHAT_TEMPLATE, tiny_tokenizer

IMAGE_ONLY = ("unet", "convnet", "resnet")


def _clip_image_processor(image_size: int) -> CLIPImageProcessorPil:
    """CLIP preprocessing (resize shortest edge, centre crop, CLIP mean/std) to `image_size` squares."""
    return CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )


def tiny_processor(kind: str, image_size: int | None = None):
    """The tokenizer / processor matching `tiny(kind)`, built offline and deterministically.

    llama: byte-level BPE `PreTrainedTokenizerFast` with chat template; llava: `LlavaProcessor`; clip:
    `CLIPProcessor`; img2img: the pipeline's tokenizer (ends with `</s>`, 77 tokens max). `image_size`
    (default: the kind's default) must match the model's config. The image-only kinds (unet, convnet,
    resnet) take pixel values from :mod:`hfdc.models.images`.
    """
    check_kind(kind)
    if kind in IMAGE_ONLY:
        raise ValueError(
            f"tiny({kind!r}) takes pixel values in [-1, 1], not a processor: use hfdc.models.images "
            "(pixel_values, image_transform)"
        )
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
