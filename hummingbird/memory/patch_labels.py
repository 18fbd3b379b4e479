"""Masks → per-patch soft labels (the class histogram of the pixels under each patch)."""

from __future__ import annotations

import torch


def patch_label_distributions(masks: torch.Tensor, patch_size: int, num_classes: int,
                              ignore_index: int = 255) -> torch.Tensor:
    """Per-patch class distributions of index masks.

    Args:
        masks: ``(B, H, W)`` integer class indices; ``ignore_index`` pixels are not counted.
        patch_size: side ``p`` of a patch; ``H`` and ``W`` must be multiples of it.
        num_classes: ``C``; any other value than ``[0, C)`` and ``ignore_index`` is an error.

    Returns:
        ``(B, H/p, W/p, C)`` float32: fraction of each patch's non-ignored pixels per class. Rows of
        patches whose pixels are all ignored are all zero.
    """
    b, height, width = masks.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"mask size {height}x{width} is not a multiple of patch size {patch_size}")
    masks = masks.long()
    valid = masks != ignore_index
    bad = valid & ((masks < 0) | (masks >= num_classes))
    if bad.any():
        values = torch.unique(masks[bad]).tolist()[:10]
        raise ValueError(f"mask values {values} are outside [0, {num_classes}) and not the ignore index "
                         f"{ignore_index}")
    h, w = height // patch_size, width // patch_size
    rows = torch.arange(height, device=masks.device) // patch_size
    cols = torch.arange(width, device=masks.device) // patch_size
    patch_of_pixel = (rows[:, None] * w + cols[None, :]).expand(b, -1, -1)
    image_of_pixel = torch.arange(b, device=masks.device)[:, None, None]
    # one flat bin per (image, patch, class); ignored pixels are dropped before counting
    bins = (image_of_pixel * (h * w) + patch_of_pixel) * num_classes + masks.clamp(0, num_classes - 1)
    counts = torch.bincount(bins[valid], minlength=b * h * w * num_classes).float()
    counts = counts.view(b, h, w, num_classes)
    totals = counts.sum(-1, keepdim=True)
    return counts / totals.clamp_min(1)
