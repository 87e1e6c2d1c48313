"""hfdc: data-centric ML methods on the Hugging Face stack.

Subpackages import lazily (``hfdc.data``, ``hfdc.models``, ``hfdc.hub``, ``hfdc.backends``,
one per method), so ``import hfdc`` and ``hfdc --help`` stay fast.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "backends",
    "cli",
    "clipcov",
    "colm",
    "config",
    "data",
    "ddranking",
    "gradmm",
    "hallucination",
    "hub",
    "mkdt",
    "mmgen",
    "models",
    "regap",
    "runs",
    "submodular",
    "tada",
    "useful",
}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"hfdc.{name}")
    raise AttributeError(f"module 'hfdc' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
