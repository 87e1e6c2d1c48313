"""Coloured-shape images with captions, noisy captions and spatial-relation questions.

Each image shows one large shape (the label) and one small shape of another colour on the left,
right, above or below it, on a dark background. Captions are templated from the scene, e.g.
"a red circle to the left of a small blue square"; a fraction ``noise_fraction`` of rows get, as
``noisy_caption``, the caption of a random row of a different class (the CLIP-style noisy pairs).
"""

from __future__ import annotations

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value
from PIL import Image as PILImage
from PIL import ImageDraw

from hfdc.data.checks import balanced_labels, check_count, check_fraction, split_rng, split_sizes

SHAPES = ("circle", "square", "triangle", "cross", "diamond", "ring")
COLORS = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
    "purple": (170, 60, 220),
    "cyan": (40, 220, 230),
}
# relation of the large shape to the small one -> (unit offset of the small shape, answer word)
RELATIONS = {
    "to the left of": ((1, 0), "left"),
    "to the right of": ((-1, 0), "right"),
    "above": ((0, 1), "above"),
    "below": ((0, -1), "below"),
}
BACKGROUND = (20, 20, 24)
SUPERSAMPLE = 4

FEATURES = Features(
    {
        "image": Image(mode="RGB"),
        "label": ClassLabel(names=list(SHAPES)),
        "caption": Value("string"),
        "noisy_caption": Value("string"),
        "is_noisy": Value("bool"),
        "question": Value("string"),
        "answer": Value("string"),
    }
)


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, center: tuple[float, float], radius: float, color) -> None:
    """Draw ``shape`` of half-width ``radius`` centred at ``center``."""
    x, y, r = center[0], center[1], radius
    if shape == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=color)
    elif shape == "square":
        s = 0.85 * r
        draw.rectangle([x - s, y - s, x + s, y + s], fill=color)
    elif shape == "triangle":
        draw.polygon([(x, y - r), (x + r, y + 0.8 * r), (x - r, y + 0.8 * r)], fill=color)
    elif shape == "cross":
        t = 0.33 * r
        draw.rectangle([x - r, y - t, x + r, y + t], fill=color)
        draw.rectangle([x - t, y - r, x + t, y + r], fill=color)
    elif shape == "diamond":
        draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=color)
    elif shape == "ring":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=color)
        h = 0.5 * r
        draw.ellipse([x - h, y - h, x + h, y + h], fill=BACKGROUND)
    else:
        raise ValueError(f"unknown shape {shape!r}; shapes: {', '.join(SHAPES)}")


def render_scene(image_size: int, big: tuple, small: tuple, relation: str, rng: np.random.Generator) -> PILImage.Image:
    """Render the large shape ``big`` = (shape, color) ``relation`` the small shape ``small``."""
    size = image_size * SUPERSAMPLE
    canvas = PILImage.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    (dx, dy), _ = RELATIONS[relation]
    big_r = size * rng.uniform(0.2, 0.24)
    small_r = size * rng.uniform(0.1, 0.12)
    # the pair sits along the relation axis; the free coordinate is jittered
    along = size / 2 + np.array([-1, 1]) * size * 0.23 + rng.uniform(-0.03, 0.03, 2) * size
    across = size / 2 + rng.uniform(-0.15, 0.15, 2) * size
    if dx:
        big_c = (along[0] if dx > 0 else along[1], across[0])
        small_c = (along[1] if dx > 0 else along[0], across[1])
    else:
        big_c = (across[0], along[0] if dy > 0 else along[1])
        small_c = (across[1], along[1] if dy > 0 else along[0])
    draw_shape(draw, big[0], big_c, big_r, COLORS[big[1]])
    draw_shape(draw, small[0], small_c, small_r, COLORS[small[1]])
    return canvas.resize((image_size, image_size), PILImage.Resampling.BOX)


def generate_split(n: int, image_size: int, noise_fraction: float, rng: np.random.Generator) -> Dataset:
    """One split of ``n`` rows with balanced labels and exactly round(noise_fraction * n) noisy captions."""
    labels = balanced_labels(n, len(SHAPES), rng)
    colors = list(COLORS)
    rows = {name: [] for name in FEATURES}
    for label in labels:
        big_color, small_color = rng.choice(colors, size=2, replace=False)
        small_shape = SHAPES[rng.integers(len(SHAPES))]
        relation = list(RELATIONS)[rng.integers(len(RELATIONS))]
        big = (SHAPES[label], str(big_color))
        small = (small_shape, str(small_color))
        rows["image"].append(render_scene(image_size, big, small, relation, rng))
        rows["label"].append(int(label))
        rows["caption"].append(f"a {big[1]} {big[0]} {relation} a small {small[1]} {small[0]}")
        rows["question"].append(f"where is the {big[1]} {big[0]} relative to the small {small[1]} {small[0]}?")
        rows["answer"].append(RELATIONS[relation][1])
    noisy = np.zeros(n, dtype=bool)
    noisy[rng.permutation(n)[: round(noise_fraction * n)]] = True
    rows["noisy_caption"] = list(rows["caption"])
    for i in np.flatnonzero(noisy):
        others = np.flatnonzero(labels != labels[i])
        if len(others) == 0:
            raise ValueError(f"split of {n} rows has a single class: cannot make a noisy caption; use n >= 2")
        rows["noisy_caption"][i] = rows["caption"][rng.choice(others)]
    rows["is_noisy"] = noisy.tolist()
    return Dataset.from_dict(rows, features=FEATURES)


def generate(
    n_train: int = 2000,
    n_validation: int = 500,
    n_test: int = 500,
    image_size: int = 32,
    noise_fraction: float = 0.3,
    seed: int = 0,
) -> DatasetDict:
    """Shapes data set: columns image, label, caption, noisy_caption, is_noisy, question, answer."""
    sizes = split_sizes(n_train, n_validation, n_test, 2)
    image_size = check_count("image_size", image_size, minimum=8)
    noise_fraction = check_fraction("noise_fraction", noise_fraction)
    return DatasetDict(
        {split: generate_split(n, image_size, noise_fraction, split_rng(seed, split)) for split, n in sizes.items()}
    )
