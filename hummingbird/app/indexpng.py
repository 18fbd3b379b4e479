"""Index PNGs, the app's exchange format for masks: class indices per pixel, 255 unlabelled (palette PNGs when
written with the classes' colours, read from palette or grayscale PNGs), checked against an image's size and the
class list."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from hummingbird.errors import ConfigError

IGNORE = 255


class BadAnnotation(ConfigError):
    """An annotation that cannot be stored (not a PNG, wrong size, values beyond the class list)."""


def decode_index_png(data: bytes, name: str, size: tuple[int, int], num_classes: int) -> np.ndarray:
    """An index PNG's values ``(H, W)`` uint8, checked: the image's ``size = (width, height)``, one channel
    (palette or grayscale), values ``0..C-1`` or 255."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "PNG":
                raise BadAnnotation(f"{name}: annotation is a {img.format} image; send an index PNG")
            if img.mode not in ("P", "L"):
                raise BadAnnotation(f"{name}: annotation is a {img.mode} PNG; send a single-channel index PNG "
                                    f"(palette or grayscale: class indices, 255 unlabelled)")
            if img.size != size:
                raise BadAnnotation(f"{name}: annotation is {img.size[0]}x{img.size[1]}, the image is "
                                    f"{size[0]}x{size[1]}")
            values = np.array(img)
    except BadAnnotation:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds on damaged data
        raise BadAnnotation(f"{name}: annotation is not a readable PNG ({type(exc).__name__}: {exc})") from None
    bad = np.unique(values[(values != IGNORE) & (values >= num_classes)])
    if bad.size:
        raise BadAnnotation(f"{name}: annotation values {bad[:10].tolist()} are beyond the {num_classes} classes "
                            f"(0..{num_classes - 1}; 255 = unlabelled)")
    return values


def encode_index_png(values: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """``(H, W)`` class indices → PNG bytes (palette mode when ``palette (256, 3)`` is given, else grayscale)."""
    values = np.ascontiguousarray(values, dtype=np.uint8)
    img = Image.frombytes("P" if palette is not None else "L", (values.shape[1], values.shape[0]), values.tobytes())
    if palette is not None:
        img.putpalette(palette.astype(np.uint8).reshape(-1).tolist())
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=1)
    return out.getvalue()
