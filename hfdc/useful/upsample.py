"""Emphasis as datasets operations: repeat chosen rows (USEFUL step 4), weight their loss (the loss-upweighting
and JTT baselines), or draw a random subset of the same size (the random-upsampling baseline)."""

from __future__ import annotations

import numpy as np
from datasets import Dataset


def _check(dataset: Dataset, indices: list[int], factor: int) -> None:
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"factor must be an integer >= 1, got {factor}")
    bad = [i for i in indices if not 0 <= i < len(dataset)]
    if bad:
        raise ValueError(f"indices {bad[:5]} are outside the dataset of {len(dataset)} rows")


def upsample(dataset: Dataset, indices: list[int], factor: int = 2) -> Dataset:
    """All rows once, then the rows at ``indices`` ``factor - 1`` more times (each appears ``factor`` times).

    A ``source_index`` column records the original row of every output row.
    """
    _check(dataset, indices, factor)
    order = list(range(len(dataset))) + [int(i) for i in indices] * (int(factor) - 1)
    with_source = (
        dataset
        if "source_index" in dataset.column_names
        else dataset.add_column("source_index", list(range(len(dataset))))
    )
    return with_source.select(order)


def upweight(dataset: Dataset, indices: list[int], factor: int = 2) -> Dataset:
    """``dataset`` with a ``loss_weight`` column: ``factor`` at ``indices``, 1 elsewhere (read by
    :class:`hfdc.useful.weighting.WeightedLossMixin`: in expectation the same objective as :func:`upsample`)."""
    _check(dataset, indices, factor)
    weights = np.ones(len(dataset), dtype=np.float32)
    weights[np.asarray(indices, dtype=np.int64)] = factor
    if "loss_weight" in dataset.column_names:
        raise ValueError("the data set already has a 'loss_weight' column; drop it before upweighting")
    return dataset.add_column("loss_weight", weights.tolist())


def random_indices(num_rows: int, count: int, seed: int = 0) -> list[int]:
    """``count`` distinct row indices out of ``num_rows``, uniformly at random (USEFUL's random-upsampling baseline)."""
    if not 0 <= count <= num_rows:
        raise ValueError(f"cannot draw {count} random indices from {num_rows} rows")
    return sorted(np.random.default_rng(seed).choice(num_rows, size=count, replace=False).tolist())
