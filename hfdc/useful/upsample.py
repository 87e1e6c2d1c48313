"""Upsampling as a datasets operation: repeat chosen rows (USEFUL step 4) or a random subset of the same size."""

from __future__ import annotations

import numpy as np
from datasets import Dataset


def upsample(dataset: Dataset, indices: list[int], factor: int = 2) -> Dataset:
    """All rows once, then the rows at ``indices`` ``factor - 1`` more times (each appears ``factor`` times).

    A ``source_index`` column records the original row of every output row.
    """
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"upsampling factor must be an integer >= 1, got {factor}")
    bad = [i for i in indices if not 0 <= i < len(dataset)]
    if bad:
        raise ValueError(f"indices {bad[:5]} are outside the dataset of {len(dataset)} rows")
    order = list(range(len(dataset))) + [int(i) for i in indices] * (int(factor) - 1)
    with_source = (
        dataset
        if "source_index" in dataset.column_names
        else dataset.add_column("source_index", list(range(len(dataset))))
    )
    return with_source.select(order)


def random_indices(num_rows: int, count: int, seed: int = 0) -> list[int]:
    """``count`` distinct row indices out of ``num_rows``, uniformly at random (USEFUL's random-upsampling baseline)."""
    if not 0 <= count <= num_rows:
        raise ValueError(f"cannot draw {count} random indices from {num_rows} rows")
    return sorted(np.random.default_rng(seed).choice(num_rows, size=count, replace=False).tolist())
