"""Pictures: colour overlays with legends, and the neighbour grid of a query patch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hummingbird.visual.neighbours import Neighbour, SourceImages

TILE = 128  # neighbour tile side in pixels
OUTLINE = (255, 255, 0)


def _font(size: int = 13) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def colour_labels(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Label map ``(H, W)`` → colours ``(H, W, 3)`` uint8."""
    return palette[labels.astype(np.int64).clip(0, len(palette) - 1)]


def overlay(image: Image.Image, labels: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """``image`` blended with the colours of ``labels (H, W)`` at opacity ``alpha``."""
    blended = (1 - alpha) * np.asarray(image, dtype=np.float32) + alpha * colour_labels(labels, palette)
    return Image.fromarray(blended.round().astype(np.uint8))


def with_legend(picture: Image.Image, labels: np.ndarray, names: Sequence[str], palette: np.ndarray) -> Image.Image:
    """``picture`` with a legend of the classes present in ``labels`` (largest first) on its right."""
    values, counts = np.unique(labels, return_counts=True)
    present = [int(v) for v, _ in sorted(zip(values, counts), key=lambda vc: -vc[1]) if v < len(names)]
    font, row = _font(), 20
    width = 40 + max([int(font.getlength(f"{names[c]} 100.0%")) for c in present] + [60])
    canvas = Image.new("RGB", (picture.width + width, max(picture.height, 10 + row * len(present))), "white")
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, c in enumerate(present):
        y = 6 + i * row
        draw.rectangle([picture.width + 8, y, picture.width + 24, y + 14], fill=tuple(int(v) for v in palette[c]),
                       outline="black")
        share = 100 * counts[list(values).index(c)] / labels.size
        draw.text((picture.width + 30, y), f"{names[c]} {share:.1f}%", fill="black", font=font)
    return canvas


def neighbour_tile(source: Image.Image, box: tuple[float, float, float, float], context: float = 3.0) -> Image.Image:
    """A ``TILE``-square crop of ``source`` centred on ``box`` (``context`` × its size), box outlined."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * context
    left, top = (x0 + x1) / 2 - side / 2, (y0 + y1) / 2 - side / 2
    # outside the source image is shown light grey, not black (black can look like a class colour)
    region = Image.new("RGB", (max(1, round(side)), max(1, round(side))), (235, 235, 235))
    region.paste(source, (-round(left), -round(top)))
    crop = region.resize((TILE, TILE), Image.BILINEAR)
    scale = TILE / side
    draw = ImageDraw.Draw(crop)
    draw.rectangle([(x0 - left) * scale, (y0 - top) * scale, (x1 - left) * scale - 1, (y1 - top) * scale - 1],
                   outline=OUTLINE, width=2)
    return crop


def neighbour_grid(query: Image.Image, labels: np.ndarray, query_box: tuple[float, float, float, float],
                   neighbours: Sequence[Neighbour], sources: SourceImages, palette: np.ndarray,
                   title: str = "") -> Image.Image:
    """Query image (predicted labels at 50 %, query patch outlined) beside a grid of its neighbours'
    source crops, each with its label name, label colour and similarity."""
    font = _font()
    columns = min(4, max(1, len(neighbours)))
    rows = math.ceil(len(neighbours) / columns)
    caption = 34
    grid_w, grid_h = columns * (TILE + 8), rows * (TILE + caption)
    shown = overlay(query, labels, palette, 0.5)
    scale = max(2 * TILE, grid_h) / max(shown.size)  # small queries are enlarged, large ones reduced
    shown = shown.resize((round(shown.width * scale), round(shown.height * scale)), Image.BILINEAR)
    ImageDraw.Draw(shown).rectangle([v * scale for v in query_box], outline=OUTLINE, width=3)
    canvas = Image.new("RGB", (shown.width + 16 + grid_w, max(shown.height, grid_h) + 24), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 4), title, fill="black", font=font)
    canvas.paste(shown, (0, 24))
    cache: dict[int, Image.Image] = {}
    for i, n in enumerate(neighbours):
        x = shown.width + 16 + (i % columns) * (TILE + 8)
        y = 24 + (i // columns) * (TILE + caption)
        if n.image_index not in cache:
            cache[n.image_index] = sources.open(n.image_index)
        canvas.paste(neighbour_tile(cache[n.image_index], n.box), (x, y))
        colour = tuple(int(v) for v in palette[n.label])
        draw.rectangle([x, y + TILE + 3, x + 12, y + TILE + 15], fill=colour, outline="black")
        draw.text((x + 16, y + TILE + 2), n.label_name[:16], fill="black", font=font)
        draw.text((x, y + TILE + 17), f"#{i + 1}  sim {n.similarity:.3f}", fill="black", font=font)
    return canvas


def save_label_png(labels: np.ndarray, palette: np.ndarray, path: str | Path) -> None:
    """Label map ``(H, W)`` → palette PNG at ``path`` (atomic): the one writer of label maps."""
    from hummingbird.files.atomic import save_image

    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(palette.flatten().tolist())
    save_image(image, path, format="PNG")
