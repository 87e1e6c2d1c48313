"""scikit-learn's 8x8 handwritten digits (1797 images) as an ``Image("L")`` data set with a stratified split.

Pixels are sklearn's 0..16 intensities scaled to uint8: round(v * 255 / 16).
"""

from __future__ import annotations

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from hfdc.data.checks import check_count

FEATURES = Features({"image": Image(mode="L"), "label": ClassLabel(names=[str(d) for d in range(10)])})


def scaled_images() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [1797, 8, 8] scaled to 0..255, labels int [1797]) from sklearn."""
    bunch = load_digits()
    return np.round(bunch.images * 255.0 / 16.0).astype(np.uint8), bunch.target.astype(np.int64)


def generate(n_train: int | None = None, n_validation: int = 300, n_test: int = 300, seed: int = 0) -> DatasetDict:
    """Digits: columns image (L, 8x8), label ("0".."9"); validation and test stratified, train the rest or n_train of it."""
    images, labels = scaled_images()
    n_validation = check_count("n_validation", n_validation, minimum=10)
    n_test = check_count("n_test", n_test, minimum=10)
    rest = len(labels) - n_validation - n_test
    if rest < 10:
        raise ValueError(
            f"n_validation + n_test = {n_validation + n_test} leaves {rest} of {len(labels)} digits for training; "
            "lower them so at least 10 remain"
        )
    if n_train is not None and not 10 <= check_count("n_train", n_train) <= rest:
        raise ValueError(
            f"parameter 'n_train' must be in [10, {rest}] (the rows left after validation and test), got {n_train}"
        )
    seed = check_count("seed", seed, minimum=0)
    index = np.arange(len(labels))
    train, test = train_test_split(index, test_size=n_test, stratify=labels, random_state=seed)
    train, validation = train_test_split(train, test_size=n_validation, stratify=labels[train], random_state=seed)
    if n_train is not None and n_train < len(train):
        train, _ = train_test_split(train, train_size=n_train, stratify=labels[train], random_state=seed)
    return DatasetDict(
        {
            split: Dataset.from_dict({"image": list(images[idx]), "label": labels[idx].tolist()}, features=FEATURES)
            for split, idx in (("train", np.sort(train)), ("validation", np.sort(validation)), ("test", np.sort(test)))
        }
    )
