"""Patch ↔ pixel geometry: where a patch of a network input lies in its source image."""

from __future__ import annotations

import torch


def _sides(input_size: int | tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` of a network input given as a square side or a pair."""
    return (input_size, input_size) if isinstance(input_size, int) else (int(input_size[0]), int(input_size[1]))


def patch_box_in_source(view: torch.Tensor, row: int, col: int, patch_size: int,
                        input_size: int | tuple[int, int]) -> tuple[float, ...]:
    """Source-image box ``(x0, y0, x1, y1)`` (pixels, end-exclusive) of patch ``(row, col)`` of a network
    input of ``input_size`` (a square side, or ``(height, width)``) that showed ``view = (top, left,
    height, width, flipped)`` of the source image (see :mod:`hummingbird.datasets.transforms`)."""
    top, left, height, width, flipped = (int(v) for v in view)
    in_h, in_w = _sides(input_size)
    sx, sy = width / in_w, height / in_h
    x0_in, x1_in = col * patch_size, (col + 1) * patch_size
    if flipped:  # input column x shows view column (in_w - x)
        x0_in, x1_in = in_w - x1_in, in_w - x0_in
    y0_in, y1_in = row * patch_size, (row + 1) * patch_size
    return (left + x0_in * sx, top + y0_in * sy, left + x1_in * sx, top + y1_in * sy)


def point_to_patch(x: float, y: float, image_size: tuple[int, int], patch_size: int,
                   input_size: int | tuple[int, int]) -> tuple[int, int]:
    """Patch ``(row, col)`` of the resized input of ``input_size`` (a square side, or ``(height,
    width)``) that covers pixel ``(x, y)`` of an image of ``image_size = (width, height)`` (whole image
    resized, as for queries)."""
    width, height = image_size
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"point ({x}, {y}) is outside the {width}x{height} image")
    in_h, in_w = _sides(input_size)
    return (min(int(y * in_h / height) // patch_size, in_h // patch_size - 1),
            min(int(x * in_w / width) // patch_size, in_w // patch_size - 1))
