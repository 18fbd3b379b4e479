"""Colour palettes for label maps: the Pascal VOC and ADE20K standards, and a generated one for any class count."""

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


# The ADE20K SceneParsing colour standard (as used by mmsegmentation), 150 RGB triples in hex.
_ADE20K_HEX = (
    "787878b4787806e6e650323204c8037878508c8c8ccc05ffe6e6e604fa07e005ffebff0796053d78784608ff33ff0652"
    "8fff8cccff04ff3307cc46030066c83de6faff06330b66ffff0747ff09e00907e6dcdcdcff095c7009ff08ffd607ffe0"
    "ffb8060aff47ff290a07ffffe0ff086608ffff3d06ffc207ff7a0800ff14ff0829ff05990633ffeb0cffa0961400a3ff"
    "8c8c8cfa0a0f14ff001fff00ff1f00ffe00099ff000000ffff470000ebff00adff1f00ff0bc8c8ff520000fff5003dff"
    "00ff7000ff85ff0000ffa300ff6600c2ff00008fff33ff000052ff00ff2900ffad0a00ffadff0000ff99ff5c00ff00ff"
    "ff00f5ff0066ffad00ff0014ffb8b8001fff00ff3d0047ffff00cc00ffc200ff52000aff0070ff3300ff00c2ff007aff"
    "00ffa3ff990000ff0aff70008fff005200ffa3ff00ffeb0008b8aa8500ff00ff5cb800ffff001f00b8ff00d6ffff0070"
    "5cff0000e0ff70e0ff46b8a0a300ff9900ff47ff00ff00a3ffcc00ff008f00ffeb85ff00ff00ebf500ffff007afff500"
    "0abed4d6ff0000ccff1400ffffff000099ff0029ff00ffcc2900ff29ff00ad00ff00f5ff4700ff7a00ff00ffb8005cff"
    "b8ff000085ffffd60019c2c266ff005c00ff"
)


def ade20k_palette() -> np.ndarray:
    """The standard ADE20K colour map ``(150, 3)`` uint8 (class i after the label shift)."""
    return np.frombuffer(bytes.fromhex("".join(_ADE20K_HEX)), dtype=np.uint8).reshape(150, 3).copy()


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
    if dataset == "voc":
        colours = voc_palette(num_classes)
    elif dataset == "ade20k" and num_classes == 150:
        colours = ade20k_palette()
    else:
        colours = distinct_palette(num_classes)
    palette[:num_classes] = colours[:num_classes]
    palette[255] = 255
    return palette
