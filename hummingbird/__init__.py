"""In-context dense scene understanding: frozen-ViT patch features → memory bank → Hummingbird decoder.

``from hummingbird import Segmenter`` is the Python API (:mod:`hummingbird.segmenter`); it is imported
on first use, so ``import hummingbird`` (and the command line's ``--help``) stays light.
"""

__version__ = "0.1.0"
__all__ = ["Segmenter", "Settings", "SearchOptions", "FungiOptions", "__version__"]

_LAZY = {"Segmenter": "hummingbird.segmenter", "Settings": "hummingbird.settings",
         "SearchOptions": "hummingbird.settings", "FungiOptions": "hummingbird.settings"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hummingbird' has no attribute {name!r}")
