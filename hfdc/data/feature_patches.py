"""The two-layer-CNN data model of USEFUL (Nguyen et al., NeurIPS 2024, arXiv 2404.17768) and TADA.

Each example x = (x_1, ..., x_P) has P patches in R^d. For a binary label y in {-1, +1}
(ClassLabel 0 -> -1, 1 -> +1) one patch is the easy feature y * beta_e * v_e, one the hard feature
y * beta_h * v_h (beta_e > beta_h), and the others are Gaussian noise N(0, sigma^2 (I - sum_v v v^T))
orthogonal to every feature vector. With ``num_classes`` K > 2, class k has its own orthogonal
easy and hard vectors and the patches are beta_e * v_e[k], beta_h * v_h[k]. With ``hard_noise_std`` s > 0
the hard patch's strength is beta_h + xi, xi ~ N(0, s^2) per example, so a rule on the hard coordinate
alone is right with probability Phi(beta_h / s) (binary), not 1. A fraction
``missing_easy_fraction`` of examples has no easy patch (noise instead): the slow-learnable examples
that USEFUL upsamples. Feature vectors are standard basis vectors (see :func:`feature_vectors`);
patch positions are random per example.
"""

from __future__ import annotations

import numpy as np
from datasets import Array2D, ClassLabel, Dataset, DatasetDict, Features, Value

from hfdc.data.checks import (
    balanced_labels,
    check_count,
    check_fraction,
    check_positive,
    split_rng,
    split_sizes,
)


def feature_vectors(num_classes: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(easy, hard) unit feature vectors, each [rows, dim]: one row for 2 classes, else one per class.

    Binary: v_e = e_0, v_h = e_1. K classes: v_e[k] = e_k, v_h[k] = e_{K+k}.
    """
    rows = 1 if num_classes == 2 else num_classes
    basis = np.eye(dim, dtype=np.float32)
    return basis[:rows], basis[rows : 2 * rows]


def features(num_patches: int, dim: int, num_classes: int) -> Features:
    """Features of the data set: x float32 [num_patches, dim], label, has_easy."""
    names = ["-1", "+1"] if num_classes == 2 else [str(k) for k in range(num_classes)]
    return Features(
        {
            "x": Array2D(shape=(num_patches, dim), dtype="float32"),
            "label": ClassLabel(names=names),
            "has_easy": Value("bool"),
        }
    )


def generate_split(
    n: int,
    num_patches: int,
    dim: int,
    num_classes: int,
    easy_strength: float,
    hard_strength: float,
    noise_std: float,
    missing_easy_fraction: float,
    rng: np.random.Generator,
    hard_noise_std: float = 0.0,
) -> dict:
    """Columns of one split; exactly round(missing_easy_fraction * n) rows lack the easy patch."""
    easy, hard = feature_vectors(num_classes, dim)
    labels = balanced_labels(n, num_classes, rng)
    if num_classes == 2:
        sign = (2 * labels - 1).astype(np.float32)[:, None]
        easy_patch, hard_patch = sign * easy_strength * easy[0], sign * hard_strength * hard[0]
    else:
        easy_patch, hard_patch = easy_strength * easy[labels], hard_strength * hard[labels]
    x = rng.normal(0.0, noise_std, size=(n, num_patches, dim)).astype(np.float32)
    x[:, :, : 2 * len(easy)] = 0.0  # noise orthogonal to every feature vector
    has_easy = np.ones(n, dtype=bool)
    has_easy[rng.permutation(n)[: round(missing_easy_fraction * n)]] = False
    positions = np.argsort(rng.random((n, num_patches)), axis=1)  # random distinct patch slots
    rows = np.arange(n)
    x[rows[has_easy], positions[has_easy, 0]] = easy_patch[has_easy]
    if hard_noise_std:  # drawn last: the other columns do not change with it
        hard_patch = (
            hard_patch + rng.normal(0.0, hard_noise_std, size=(n, 1)).astype(np.float32) * hard[labels % len(hard)]
        )
    x[rows, positions[:, 1]] = hard_patch
    return {"x": x, "label": labels, "has_easy": has_easy}


def generate(
    n_train: int = 1000,
    n_validation: int = 200,
    n_test: int = 1000,
    num_patches: int = 4,
    dim: int = 32,
    num_classes: int = 2,
    easy_strength: float = 2.0,
    hard_strength: float = 0.5,
    noise_std: float = 0.5,
    missing_easy_fraction: float = 0.25,
    hard_noise_std: float = 0.0,
    seed: int = 0,
) -> DatasetDict:
    """Feature-patch data set: columns x (float32 [num_patches, dim]), label, has_easy."""
    sizes = split_sizes(n_train, n_validation, n_test)
    num_patches = check_count("num_patches", num_patches, minimum=2)
    num_classes = check_count("num_classes", num_classes, minimum=2)
    feature_dims = 2 if num_classes == 2 else 2 * num_classes
    dim = check_count("dim", dim, minimum=feature_dims + 1)
    easy_strength = check_positive("easy_strength", easy_strength)
    hard_strength = check_positive("hard_strength", hard_strength)
    if hard_strength >= easy_strength:
        raise ValueError(
            f"parameter 'hard_strength' ({hard_strength}) must be below 'easy_strength' ({easy_strength}): "
            "the easy feature is the stronger one"
        )
    noise_std = check_positive("noise_std", noise_std, allow_zero=True)
    hard_noise_std = check_positive("hard_noise_std", hard_noise_std, allow_zero=True)
    missing = check_fraction("missing_easy_fraction", missing_easy_fraction)
    feats = features(num_patches, dim, num_classes)
    return DatasetDict(
        {
            split: Dataset.from_dict(
                generate_split(
                    n,
                    num_patches,
                    dim,
                    num_classes,
                    easy_strength,
                    hard_strength,
                    noise_std,
                    missing,
                    split_rng(seed, split),
                    hard_noise_std,
                ),
                features=feats,
            )
            for split, n in sizes.items()
        }
    )
