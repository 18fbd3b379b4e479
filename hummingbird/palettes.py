"""Colour palettes for label maps: the Pascal VOC palette and a generated one for any class count."""

from __future__ import annotations

import colorsys

import numpy as np


def voc_palette(n: int = 256) -> np.ndarray:
    """The standard Pascal VOC colour map ``(n, 3)`` uint8 (bit-interleaved class index)."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


def distinct_palette(n: int) -> np.ndarray:
    """``n`` well-separated colours ``(n, 3)`` uint8: golden-ratio hue steps, alternating lightness."""
    colours = []
    for i in range(n):
        hue = (i * 0.618033988749895) % 1.0
        lightness = (0.45, 0.6, 0.35)[i % 3]
        colours.append(colorsys.hls_to_rgb(hue, lightness, 0.75))
    return (np.array(colours).reshape(n, 3) * 255).round().astype(np.uint8)


def palette_for(dataset: str, num_classes: int) -> np.ndarray:
    """Palette ``(256, 3)`` for a dataset; index 255 (ignore) is white."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    colours = voc_palette(num_classes) if dataset == "voc" else distinct_palette(num_classes)
    palette[:num_classes] = colours[:num_classes]
    palette[255] = 255
    return palette
