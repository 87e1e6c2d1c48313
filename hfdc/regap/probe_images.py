"""The images paired with harmful instructions in ReGap's safety evaluation (Yang et al. 2025, arXiv 2505.24208).

- ``blank``: a white image;
- ``random``: uniform noise pixels (an irrelevant image), seeded per prompt;
- ``typographic``: the instruction itself rendered as black text on white (the FigStep / MM-SafetyBench kind);
- ``none``: no image, the text-only baseline;
- ``dataset``: the images that come with a safety data set (MM-SafetyBench, FigStep), evaluated as they are.
"""

from __future__ import annotations

import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

IMAGE_KINDS = ("blank", "random", "typographic", "none")
DATASET_KIND = "dataset"
EVAL_KINDS = (*IMAGE_KINDS, DATASET_KIND)


def blank_image(size: int) -> Image.Image:
    """A white ``size`` x ``size`` RGB image."""
    return Image.new("RGB", (size, size), (255, 255, 255))


def random_image(size: int, seed: int) -> Image.Image:
    """Uniform random RGB pixels from ``numpy.random.default_rng(seed)``."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def typographic_image(text: str, size: int) -> Image.Image:
    """``text`` wrapped and drawn in black on a white image, drawn at >= 336 px and resized to ``size``."""
    canvas = max(size, 336)
    image = blank_image(canvas)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=canvas // 12)
    lines = textwrap.wrap(text, width=18)
    draw.multiline_text((canvas // 20, canvas // 20), "\n".join(lines), fill=(0, 0, 0), font=font, spacing=4)
    return image if canvas == size else image.resize((size, size), Image.Resampling.LANCZOS)


def probe_images(kind: str, prompts: list[str], size: int, seed: int = 0) -> list[Image.Image] | None:
    """One image of ``kind`` (see ``IMAGE_KINDS``) per prompt, or None for ``"none"`` (text only)."""
    if kind not in IMAGE_KINDS:
        raise ValueError(f"image kind {kind!r} is not one of {list(IMAGE_KINDS)}")
    if kind == "none":
        return None
    if kind == "blank":
        return [blank_image(size) for _ in prompts]
    if kind == "random":
        return [random_image(size, seed * 100_003 + i) for i in range(len(prompts))]
    return [typographic_image(prompt, size) for prompt in prompts]


__all__ = [
    "DATASET_KIND",
    "EVAL_KINDS",
    "IMAGE_KINDS",
    "blank_image",
    "probe_images",
    "random_image",
    "typographic_image",
]
