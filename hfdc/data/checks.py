"""Argument checks and per-split random generators shared by the embedded data sets."""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "validation", "test")


def check_count(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, else ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"parameter {name!r} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_fraction(name: str, value, upper_open: bool = False) -> float:
    """``value`` as a float in [0, 1] (or [0, 1) with ``upper_open``), else ValueError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating))
        or not (0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0)
    ):
        interval = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(f"parameter {name!r} must be a number in {interval}, got {value!r}")
    return float(value)


def check_positive(name: str, value, allow_zero: bool = False) -> float:
    """``value`` as a float > 0 (>= 0 with ``allow_zero``), else ValueError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating))
        or not (value >= 0 if allow_zero else value > 0)
    ):
        raise ValueError(f"parameter {name!r} must be a number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


def split_sizes(n_train, n_validation, n_test, minimum: int = 1) -> dict[str, int]:
    """Rows per split ({"train": n_train, ...}), each checked to be an integer >= ``minimum``."""
    return {split: check_count(f"n_{split}", n, minimum) for split, n in zip(SPLITS, (n_train, n_validation, n_test))}


def split_rng(seed: int, split: str) -> np.random.Generator:
    """Independent generator per (seed, split): changing one split's size leaves the others unchanged."""
    return np.random.default_rng([check_count("seed", seed, minimum=0), SPLITS.index(split)])


def balanced_labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels with class counts differing by at most one, in random order."""
    return rng.permutation(np.arange(n) % num_classes)
