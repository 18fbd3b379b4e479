"""In-context dense scene understanding: frozen-ViT patch features → memory bank → Hummingbird decoder.

The public API is :data:`__all__`, declared here once; each name is imported on first use, so
``import hummingbird`` (and the command line's ``--help``) stays light::

    from hummingbird import Segmenter
    seg = Segmenter.from_examples(images, masks, backbone="dinov2_vits14", weights="vits14.pth")
    labels = seg.segment(photo)      # (H, W) int64 class indices at the photo's own size
"""

__version__ = "0.1.0"

# Public name → the module that defines it.
_PUBLIC = {
    "Segmenter": "hummingbird.segmenter",
    "DepthEstimator": "hummingbird.tasks.depth",
    "VideoPropagator": "hummingbird.tasks.video",
    "Settings": "hummingbird.settings",
    "SearchOptions": "hummingbird.settings",
    "FungiOptions": "hummingbird.settings",
    "MemoryBank": "hummingbird.memory.bank",
    "load_backbone": "hummingbird.models.backbones",
    "load_dataset": "hummingbird.datasets.registry",
    "prepare_dataset": "hummingbird.datasets.prepare",
    "evaluation_plots": "hummingbird.visual.plots",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'hummingbird' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
