"""Patch ↔ pixel geometry: where a patch of a network input lies in its source image."""

from __future__ import annotations

import torch


def patch_box_in_source(view: torch.Tensor, row: int, col: int, patch_size: int, input_size: int) -> tuple[float, ...]:
    """Source-image box ``(x0, y0, x1, y1)`` (pixels, end-exclusive) of patch ``(row, col)`` of an
    ``input_size``-square network input that showed ``view = (top, left, height, width, flipped)`` of
    the source image (see :mod:`hummingbird.transforms`)."""
    top, left, height, width, flipped = (int(v) for v in view)
    sx, sy = width / input_size, height / input_size
    x0_in, x1_in = col * patch_size, (col + 1) * patch_size
    if flipped:  # input column x shows view column (input_size - x)
        x0_in, x1_in = input_size - x1_in, input_size - x0_in
    y0_in, y1_in = row * patch_size, (row + 1) * patch_size
    return (left + x0_in * sx, top + y0_in * sy, left + x1_in * sx, top + y1_in * sy)


def point_to_patch(x: float, y: float, image_size: tuple[int, int], patch_size: int, input_size: int) -> tuple[int, int]:
    """Patch ``(row, col)`` of the resized ``input_size`` input that covers pixel ``(x, y)`` of an image of
    ``image_size = (width, height)`` (whole image resized, as for queries)."""
    width, height = image_size
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"point ({x}, {y}) is outside the {width}x{height} image")
    grid = input_size // patch_size
    return min(int(y * input_size / height) // patch_size, grid - 1), min(int(x * input_size / width) // patch_size, grid - 1)
