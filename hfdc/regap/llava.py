"""What ReGap needs from a LLaVA-style model: the check that it is one, its projector, the image / text token masks.

A LLaVA-style model runs a vision tower, projects the image features with ``multi_modal_projector`` into the
language model's embedding space, and writes them over the ``image_token_id`` placeholders of ``input_ids``
(transformers' ``LlavaForConditionalGeneration`` and its relatives).
"""

from __future__ import annotations

import torch

from hfdc.models.mini_llava import image_tokens_per_image

PROJECTOR = "multi_modal_projector"


def check_llava(model) -> None:
    """Raise TypeError naming the model's class unless it is LLaVA-style (module docstring)."""
    config = getattr(model, "config", None)
    missing = [
        what
        for what, ok in (
            ("config.vision_config", hasattr(config, "vision_config")),
            ("config.text_config", hasattr(config, "text_config")),
            ("config.image_token_id", getattr(config, "image_token_id", None) is not None),
            (f"a {PROJECTOR} module", any(name.endswith(PROJECTOR) for name, _ in model.named_modules())),
        )
        if not ok
    ]
    if missing:
        raise TypeError(
            f"ReGap needs a LLaVA-style model (vision tower -> {PROJECTOR} -> language model, image placeholders "
            f"config.image_token_id), such as transformers' LlavaForConditionalGeneration or "
            f"hfdc.models.mini_llava(...); {type(model).__name__} has no {', '.join(missing)}"
        )


def projector(model) -> torch.nn.Module:
    """The ``multi_modal_projector`` module of a LLaVA-style model."""
    check_llava(model)
    return next(module for name, module in model.named_modules() if name.endswith(PROJECTOR))


def freeze_for_stage1(model) -> list[str]:
    """Freeze everything but the projector (LLaVA stage 1); returns the names of the trainable parameters."""
    keep = {id(p) for p in projector(model).parameters()}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in keep)
    return [name for name, p in model.named_parameters() if p.requires_grad]


def expected_image_tokens(config) -> int:
    """Placeholder tokens per image the model fills: (image_size / patch_size)^2 (+1 for the "full" strategy)."""
    vision = config.vision_config
    if hasattr(vision, "image_size") and hasattr(vision, "patch_size"):
        return image_tokens_per_image(vision, config.vision_feature_select_strategy)
    return config.image_seq_length


def check_image_tokens(config, input_ids: torch.Tensor, pixel_values: torch.Tensor | None) -> None:
    """Raise ValueError when ``input_ids`` holds another number of image placeholders than the images need."""
    n_images = 0 if pixel_values is None else pixel_values.shape[0]
    per_image = expected_image_tokens(config)
    found = int((input_ids == config.image_token_id).sum())
    if found != n_images * per_image:
        raise ValueError(
            f"image token count mismatch: the inputs hold {found} image tokens (id {config.image_token_id}) for "
            f"{n_images} image(s), but the model fills {per_image} per image (vision image_size / patch_size, "
            f"vision_feature_select_strategy={config.vision_feature_select_strategy!r}); build the inputs with "
            "the model's own processor, whose patch_size, num_additional_image_tokens and "
            "vision_feature_select_strategy must match the model's config"
        )


def modality_masks(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, image_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean [batch, seq] masks of the image tokens and of the text tokens that follow the first image token.

    As in the MIR reference code, text means the tokens after the image (the caption or question; a template's
    system prompt before the image is left out). Padding is in neither mask, nor is the first attended position
    of a row: its hidden state is the attention sink, whose norm is orders of magnitude above the others in most
    LLMs (x170 at SmolLM2's middle layers), and would dominate any mean or covariance.
    """
    attended = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    first = attended.int().cumsum(dim=1) == 1
    keep = attended & ~first
    image = input_ids == image_token_id
    after_image = image.int().cumsum(dim=1) > 0
    return keep & image, keep & after_image & ~image


__all__ = [
    "PROJECTOR",
    "check_image_tokens",
    "check_llava",
    "expected_image_tokens",
    "freeze_for_stage1",
    "modality_masks",
    "projector",
]
