"""Paired image/mask transforms.

Each transform maps ``(PIL image, mask (H, W) int64 ndarray, seed)`` to ``(image (3, S, S) float in
[0, 1], mask (S, S) int64)``. Geometry is shared between image and mask; masks are always
resampled with nearest neighbour; photometric changes touch the image only. Randomness comes
from ``seed`` alone, so a sample's augmentation does not depend on worker count or order.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2


def _to_tensors(image: Image.Image, mask: np.ndarray) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    image_t = tv_tensors.Image(torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1))
    mask_t = tv_tensors.Mask(torch.from_numpy(np.asarray(mask, dtype=np.int64)))
    return image_t, mask_t


class EvalResize:
    """Resize image (bilinear, antialiased) and mask (nearest) to ``size × size``."""

    def __init__(self, size: int):
        self.size = size
        self.ops = v2.Compose([v2.Resize((size, size), antialias=True), v2.ToDtype(torch.float32, scale=True)])

    def __call__(self, image: Image.Image, mask: np.ndarray, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        image_t, mask_t = self.ops(*_to_tensors(image, mask))
        return image_t.as_subclass(torch.Tensor), mask_t.as_subclass(torch.Tensor)


class MemoryAugment:
    """Hummingbird memory-bank augmentation: random resized crop and horizontal flip shared by
    image and mask, colour jitter on the image only, output ``size × size``.

    Args:
        size: output side in pixels (a multiple of the backbone's patch size).
        crop_scale: area range of the random resized crop.
        flip: probability of a horizontal flip.
        jitter: brightness/contrast/saturation strength; hue jitter is a quarter of it.
        jitter_p: probability of applying colour jitter.
    """

    def __init__(self, size: int, crop_scale: tuple[float, float] = (0.5, 1.0), flip: float = 0.5,
                 jitter: float = 0.4, jitter_p: float = 0.8):
        self.size = size
        self.geometric = v2.Compose([
            v2.RandomResizedCrop((size, size), scale=crop_scale, antialias=True),
            v2.RandomHorizontalFlip(flip),
        ])
        self.photometric = v2.RandomApply([v2.ColorJitter(jitter, jitter, jitter, jitter / 4)], p=jitter_p)
        self.to_float = v2.ToDtype(torch.float32, scale=True)

    def __call__(self, image: Image.Image, mask: np.ndarray, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            image_t, mask_t = self.geometric(*_to_tensors(image, mask))
            image_t = self.photometric(image_t)
        return self.to_float(image_t).as_subclass(torch.Tensor), mask_t.as_subclass(torch.Tensor)
