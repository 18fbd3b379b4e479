"""A generated dataset for trying the toolkit without downloads: solid class-coloured blocks on a
patch-aligned grid (plus noise), so classes are separable per patch even with random-init weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from hummingbird.datasets.palettes import distinct_palette

CLASS_NAMES = ("bg", "red", "green", "blue", "yellow")
# The first colours match CLASS_NAMES; more classes take generated colours.
BASE_COLOURS = np.array([[20, 20, 20], [230, 40, 40], [40, 200, 60], [50, 70, 230], [240, 220, 30]], np.uint8)


def class_colours(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` uint8 colours of the classes."""
    if num_classes <= len(BASE_COLOURS):
        return BASE_COLOURS[:num_classes]
    return np.concatenate([BASE_COLOURS, distinct_palette(num_classes)[len(BASE_COLOURS):]])


def block_scene(rng: np.random.Generator, size: int, block: int, num_classes: int,
                ignore_fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """An image ``(size, size, 3)`` of ``block``-sized squares of class colours (plus noise) and its
    index mask ``(size, size)``; a random ``ignore_fraction`` of mask pixels is 255."""
    cells = size // block
    grid = rng.integers(0, num_classes, size=(cells, cells))
    mask = np.kron(grid, np.ones((block, block), dtype=np.int64))
    image = class_colours(num_classes)[mask].astype(np.int16) + rng.integers(-12, 13, size=(size, size, 3))
    if ignore_fraction:
        mask = np.where(rng.random(mask.shape) < ignore_fraction, 255, mask)
    return np.clip(image, 0, 255).astype(np.uint8), mask.astype(np.uint8)


def write_block_dataset(root: str | Path, n_train: int = 8, n_val: int = 4, size: int = 64, block: int = 16,
                        num_classes: int = 4, seed: int = 0, ignore_fraction: float = 0.02) -> Path:
    """A folder dataset: ``images/``, ``masks/``, ``classes.txt``, ``splits/{train,val}.txt``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for sub in ("images", "masks", "splits"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"img{i:03d}" for i in range(n_train + n_val)]
    for i in ids:
        image, mask = block_scene(rng, size, block, num_classes, ignore_fraction)
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    names = list(CLASS_NAMES[:num_classes]) + [f"class_{c}" for c in range(len(CLASS_NAMES), num_classes)]
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    (root / "splits" / "train.txt").write_text("\n".join(ids[:n_train]) + "\n")
    (root / "splits" / "val.txt").write_text("\n".join(ids[n_train:]) + "\n")
    return root
