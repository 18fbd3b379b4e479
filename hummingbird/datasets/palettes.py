"""Colour palettes for label maps: the Pascal VOC and ADE20K standards (by class index, or by class name for
classes named as theirs), a user's own, and a generated one for any class count."""

from __future__ import annotations

import colorsys
from typing import Sequence

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


def colours_by_name(class_names: Sequence[str]) -> np.ndarray | None:
    """``(C, 3)`` colours of ``class_names`` when every name is a class of one known dataset (Pascal VOC,
    ADE20K; in any order, any subset): each class gets that dataset's colour for it. ``None`` otherwise."""
    from hummingbird.datasets.classes import ADE20K_CLASSES, VOC_CLASSES

    names = [str(n) for n in class_names]
    for known, colours in ((VOC_CLASSES, voc_palette), (ADE20K_CLASSES, ade20k_palette)):
        if names and set(names) <= set(known):
            table = colours()
            return np.stack([table[known.index(n)] for n in names])
    return None


def checked_palette(colours, num_classes: int) -> np.ndarray:
    """A palette given by a user: ``(C', 3)`` values 0..255 (``C' >= num_classes``; a list of RGB triples, an
    array, or ``#rrggbb`` strings) → ``(num_classes, 3)`` uint8; :class:`ConfigError` naming ``palette=``."""
    from hummingbird.errors import ConfigError, option

    try:
        rows = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) if isinstance(c, str) else c for c in colours]
        array = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{option('palette')}: not a list of RGB colours ({exc})") from None
    if array.ndim != 2 or array.shape[1] != 3 or len(array) < num_classes:
        raise ConfigError(f"{option('palette')}: expected ({num_classes}, 3) RGB values, one row per class; got shape "
                          f"{array.shape}")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
        raise ConfigError(f"{option('palette')}: RGB values must be in 0..255")
    return array[:num_classes].round().astype(np.uint8)


def palette_for(dataset: str, num_classes: int, class_names: Sequence[str] | None = None,
                colours=None) -> np.ndarray:
    """Palette ``(256, 3)`` for a bank; index 255 (ignore) is white. The classes' colours: ``colours`` when
    given (:func:`checked_palette`), else the known dataset's colour of each class name
    (:func:`colours_by_name`), else VOC's colours by index for VOC-layout data, else generated distinct
    colours."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    named = colours_by_name(class_names) if class_names is not None else None
    if colours is not None:
        chosen = checked_palette(colours, num_classes)
    elif named is not None and len(named) == num_classes:
        chosen = named
    elif dataset == "voc":
        chosen = voc_palette(num_classes)
    elif dataset == "ade20k" and num_classes == 150:
        chosen = ade20k_palette()
    else:
        chosen = distinct_palette(num_classes)
    palette[:num_classes] = chosen[:num_classes]
    palette[255] = 255
    return palette
