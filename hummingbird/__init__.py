"""In-context dense scene understanding: frozen-ViT patch features → memory bank → Hummingbird decoder."""

__version__ = "0.1.0"
