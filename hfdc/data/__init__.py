"""Embedded data sets, generated offline and deterministically: ``hfdc.data.load(name, **params)``.

Every data set returns a ``datasets.DatasetDict`` with splits train / validation / test and typed
``Features``; the same ``seed`` gives identical rows. Names: shapes, feature_patches, digits, sentiment.
"""

from __future__ import annotations

import importlib
import inspect

DATASETS: dict[str, str] = {
    "shapes": "hfdc.data.shapes",
    "feature_patches": "hfdc.data.feature_patches",
    "digits": "hfdc.data.digits",
    "sentiment": "hfdc.data.sentiment",
}


def generator(name: str):
    """The ``generate(**params)`` function of data set ``name``; unknown names raise ValueError."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}")
    return importlib.import_module(DATASETS[name]).generate


def params(name: str) -> dict:
    """Parameter name -> default of data set ``name``."""
    return {p.name: p.default for p in inspect.signature(generator(name)).parameters.values()}


def load(name: str, **params_):
    """Generate data set ``name`` (see :data:`DATASETS`) with ``params_``; returns a DatasetDict.

    Unknown parameters raise ValueError listing the parameters the data set takes.
    """
    known = params(name)
    unknown = sorted(set(params_) - set(known))
    if unknown:
        raise ValueError(
            f"data set {name!r} has no parameter(s) {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(known)}"
        )
    return generator(name)(**params_)
