"""A LLaVA from real parts: a CLIP vision tower + a causal LM + a fresh projector, as transformers' own classes.

``mini_llava(vision_tower, language_model)`` returns a ``LlavaForConditionalGeneration`` and a ``LlavaProcessor``
that save with ``save_pretrained`` and load back with ``from_pretrained`` / ``AutoProcessor``. It is LLaVA-1.5's
recipe (Liu et al. 2023, arXiv 2310.03744): the vision features of layer ``vision_feature_layer`` (CLS dropped)
go through a two-layer GELU MLP into the LM's embedding space, one ``<image>`` token per patch.
"""

from __future__ import annotations

import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForCausalLM,
    AutoTokenizer,
    CLIPModel,
    CLIPVisionModel,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

IMAGE_TOKEN = "<image>"

_CONTENT_AS_TEXT = (
    "{%- set _parts = namespace(messages=[]) -%}"
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}"
    "{%- set _parts.messages = _parts.messages + [message] -%}"
    "{%- else -%}"
    "{%- set _text = namespace(value='') -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{%- set _text.value = _text.value + '__IMAGE__\n' -%}"
    "{%- elif part['type'] == 'text' -%}{%- set _text.value = _text.value + part['text'] -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- set _parts.messages = _parts.messages + [{'role': message['role'], 'content': _text.value}] -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- set messages = _parts.messages -%}"
)


def llava_chat_template(text_template: str, image_token: str = IMAGE_TOKEN) -> str:
    """A processor chat template from a text-only one: each message's parts are first joined into one string,
    an image part becoming ``image_token`` + newline (LLaVA's "<image>\\n" layout), then ``text_template`` runs."""
    return _CONTENT_AS_TEXT.replace("__IMAGE__", image_token) + text_template


def image_tokens_per_image(vision_config, strategy: str) -> int:
    """Image tokens a CLIP-style tower gives per image: (image_size / patch_size)^2 patches, + 1 (CLS) for "full"."""
    patches = (vision_config.image_size // vision_config.patch_size) ** 2
    return patches + (1 if strategy == "full" else 0)


def _vision_tower(path: str) -> CLIPVisionModel:
    """The CLIP vision tower of a ``CLIPModel`` or ``CLIPVisionModel`` checkpoint."""
    if AutoConfig.from_pretrained(path).model_type != "clip":
        return CLIPVisionModel.from_pretrained(path)
    clip = CLIPModel.from_pretrained(path)
    tower = CLIPVisionModel(clip.config.vision_config)
    tower.load_state_dict(clip.vision_model.state_dict())
    return tower


def mini_llava(
    vision_tower: str,
    language_model: str,
    vision_feature_layer: int = -2,
    vision_feature_select_strategy: str = "default",
    projector_hidden_act: str = "gelu",
    image_token: str = IMAGE_TOKEN,
    seed: int = 0,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """(model, processor) joining a CLIP vision tower and a causal LM through a fresh projector (seeded).

    ``vision_tower``: folder or Hub id of a ``CLIPModel`` / ``CLIPVisionModel`` with its image processor (crop
    size = the tower's image_size). ``language_model``: folder or Hub id of a causal LM with its tokenizer (and
    chat template, wrapped by :func:`llava_chat_template`). ``image_token`` is added to the tokenizer when it is
    missing and the LM's embeddings grow to cover it, so its id lies inside the text vocabulary. The tower and the
    LM keep their weights; only ``multi_modal_projector`` is new.
    """
    if vision_feature_select_strategy not in ("default", "full"):
        raise ValueError(
            f"vision_feature_select_strategy must be 'default' or 'full', got {vision_feature_select_strategy!r}"
        )
    vision = _vision_tower(vision_tower)
    image_processor = AutoImageProcessor.from_pretrained(vision_tower)
    crop = getattr(image_processor, "crop_size", None) or {}
    side = vision.config.image_size
    if (crop.get("height", side), crop.get("width", side)) != (side, side):
        raise ValueError(
            f"the image processor of {vision_tower!r} crops to {crop.get('height')}x{crop.get('width')} but the "
            f"tower takes image_size={side}; save the tower with a matching image processor"
        )
    tokenizer = AutoTokenizer.from_pretrained(language_model)
    declared = getattr(tokenizer, "image_token", None)
    if declared is not None and declared != image_token:
        raise ValueError(
            f"the tokenizer of {language_model!r} declares image_token {declared!r}; pass image_token={declared!r}"
        )
    lm = AutoModelForCausalLM.from_pretrained(language_model, dtype=torch.float32)
    if image_token not in tokenizer.get_vocab():
        tokenizer.add_tokens([image_token], special_tokens=True)
    if len(tokenizer) > lm.get_input_embeddings().num_embeddings:
        lm.resize_token_embeddings(len(tokenizer))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    n_tokens = image_tokens_per_image(vision.config, vision_feature_select_strategy)
    config = LlavaConfig(
        vision_config=vision.config.to_dict(),
        text_config=lm.config.to_dict(),
        image_token_id=tokenizer.convert_tokens_to_ids(image_token),
        image_seq_length=n_tokens,
        projector_hidden_act=projector_hidden_act,
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy=vision_feature_select_strategy,
        tie_word_embeddings=lm.config.tie_word_embeddings,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(vision.state_dict())
    model.model.language_model.load_state_dict(lm.get_decoder().state_dict())
    if not config.tie_word_embeddings:
        model.lm_head.load_state_dict(lm.get_output_embeddings().state_dict())
    model.tie_weights()
    model.generation_config = lm.generation_config
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vision.config.patch_size,
        vision_feature_select_strategy=vision_feature_select_strategy,
        num_additional_image_tokens=1,
        image_token=image_token,
        chat_template=llava_chat_template(tokenizer.chat_template, image_token) if tokenizer.chat_template else None,
    )
    return model.eval(), processor


__all__ = ["IMAGE_TOKEN", "image_tokens_per_image", "llava_chat_template", "mini_llava"]
