"""Data sets by name: ``hfdc.data.load(name, **params)``, the one way every hfdc method reads its data.

``name`` is one of the embedded sets (generated offline and deterministically: shapes, feature_patches,
digits, sentiment, factual_qa), a folder written by ``save_to_disk``, or anything ``datasets.load_dataset`` takes (a Hub
id, a builder such as "parquet" with ``data_files``). An embedded set returns a ``DatasetDict`` with splits
train / validation / test and typed ``Features``; the same ``seed`` gives identical rows.
"""

from __future__ import annotations

import importlib
import inspect

DATASETS: dict[str, str] = {
    "shapes": "hfdc.data.shapes",
    "feature_patches": "hfdc.data.feature_patches",
    "digits": "hfdc.data.digits",
    "sentiment": "hfdc.data.sentiment",
    "factual_qa": "hfdc.data.factual_qa",
}


def generator(name: str):
    """The ``generate(**params)`` function of data set ``name``; unknown names raise ValueError."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}")
    return importlib.import_module(DATASETS[name]).generate


def params(name: str) -> dict:
    """Parameter name -> default of data set ``name``."""
    return {p.name: p.default for p in inspect.signature(generator(name)).parameters.values()}


def is_embedded(name: str) -> bool:
    """True for the names of the embedded, generated data sets."""
    return name in DATASETS


def load(name: str, **params_):
    """The data set ``name``: an embedded set generated with ``params_``, a ``save_to_disk`` folder, or
    ``datasets.load_dataset(name, **params_)``.

    Embedded sets: unknown parameters raise ValueError listing the ones the set takes. A folder takes no
    parameters but ``split``.
    """
    from pathlib import Path

    import datasets

    if not is_embedded(name):
        if Path(name).is_dir():
            unknown = sorted(set(params_) - {"split"})
            if unknown:
                raise ValueError(f"{name!r} is a save_to_disk folder: it takes no parameters but split, got {unknown}")
            data = datasets.load_from_disk(name)
            return data[params_["split"]] if "split" in params_ else data
        try:
            return datasets.load_dataset(name, **params_)
        except (FileNotFoundError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as err:
            raise ValueError(
                f"data set {name!r} is not an embedded data set ({', '.join(DATASETS)}), not a save_to_disk folder, "
                f"and datasets.load_dataset could not load it: {err}"
            ) from err
    known = params(name)
    unknown = sorted(set(params_) - set(known))
    if unknown:
        raise ValueError(
            f"data set {name!r} has no parameter(s) {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(known)}"
        )
    return generator(name)(**params_)


def card_name(name: str) -> str:
    """How a card names data set ``name``: "<name> (embedded in hfdc)", the folder, or the Hub id as given.

    Only a Hub id reaches the card's ``datasets`` metadata (see ``hfdc.hub.hub_id``).
    """
    return f"{name} (embedded in hfdc)" if is_embedded(name) else name
