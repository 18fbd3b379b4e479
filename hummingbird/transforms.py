"""Paired image/mask transforms.

Each transform maps ``(PIL image, mask (H, W) int64 ndarray, seed)`` to ``(image (3, S, S) float in
[0, 1], mask (S, S) int64, view (5,) int64)``. ``view = (top, left, height, width, flipped)`` is the
region of the source image that the output shows (before a horizontal flip), so every output patch
can be traced back to source pixels (:func:`hummingbird.geometry.patch_box_in_source`). Geometry is
shared between image and mask; masks are always resampled with nearest neighbour; photometric changes
touch the image only. Randomness comes from ``seed`` alone, so a sample's augmentation does not depend
on worker count or order.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import RandomResizedCrop, v2
from torchvision.transforms.v2 import functional as TF


def _to_tensors(image: Image.Image, mask: np.ndarray) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    image_t = tv_tensors.Image(torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1))
    mask_t = tv_tensors.Mask(torch.from_numpy(np.asarray(mask, dtype=np.int64)))
    return image_t, mask_t


def _plain(image_t: torch.Tensor, mask_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 image → float in ``[0, 1]`` (divided by 255, bit for bit as torchvision's ``ToTensor``); plain tensors."""
    return image_t.as_subclass(torch.Tensor).float().div(255), mask_t.as_subclass(torch.Tensor)


class EvalResize:
    """Resize image and mask to ``size × size``; the view is the whole image.

    The image is resized by Pillow (bilinear, antialiased: what torchvision does to PIL images, and what
    open-hummingbird-eval does); resizing a uint8 tensor instead changes 0.08 % of the peer's predictions
    (``eval/fidelity_open_hbird.py --ablations``).
    The mask is resized with nearest neighbour.
    """

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: Image.Image, mask: np.ndarray, seed: int = 0):
        resized = image.resize((self.size, self.size), Image.Resampling.BILINEAR)
        image_t, mask_t = _to_tensors(resized, mask)
        mask_t = TF.resize(mask_t, [self.size, self.size])
        view = torch.tensor([0, 0, image.height, image.width, 0])
        return (*_plain(image_t, mask_t), view)


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
        self.size, self.crop_scale, self.flip = size, crop_scale, flip
        self.photometric = v2.RandomApply([v2.ColorJitter(jitter, jitter, jitter, jitter / 4)], p=jitter_p)

    def __call__(self, image: Image.Image, mask: np.ndarray, seed: int = 0):
        image_t, mask_t = _to_tensors(image, mask)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            top, left, height, width = RandomResizedCrop.get_params(image_t, list(self.crop_scale), [3 / 4, 4 / 3])
            flipped = bool(torch.rand(()) < self.flip)
            image_t, mask_t = (TF.resized_crop(t, top, left, height, width, [self.size, self.size], antialias=True)
                               for t in (image_t, mask_t))
            if flipped:
                image_t, mask_t = TF.horizontal_flip(image_t), TF.horizontal_flip(mask_t)
            image_t = self.photometric(image_t)
        view = torch.tensor([top, left, height, width, int(flipped)])
        return (*_plain(image_t, mask_t), view)


class OpenHbirdAugment:
    """open-hummingbird-eval 2.0.0's memory augmentation: brightness, contrast, saturation and hue jitter
    of strength 0.1, each applied on its own with probability 0.5, to the whole image; then a random
    resized crop shared with the mask, area scale ``(0.5, 2.0)`` (a crop larger than the image falls back
    to a central one, as torchvision does), ratio ``(3/4, 4/3)``; no flip. Same distribution as the peer's,
    drawn from this sample's own ``seed``.
    """

    def __init__(self, size: int, crop_scale: tuple[float, float] = (0.5, 2.0), jitter: float = 0.1,
                 jitter_p: float = 0.5):
        self.size, self.crop_scale = size, crop_scale
        self.photometric = [v2.RandomApply([v2.ColorJitter(**{name: jitter})], p=jitter_p)
                            for name in ("brightness", "contrast", "saturation", "hue")]

    def __call__(self, image: Image.Image, mask: np.ndarray, seed: int = 0):
        image_t, mask_t = _to_tensors(image, mask)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for jitter in self.photometric:
                image_t = jitter(image_t)
            image_t, mask_t = _plain(image_t, mask_t)
            top, left, height, width = RandomResizedCrop.get_params(image_t, list(self.crop_scale), [3 / 4, 4 / 3])
        image_t = TF.resized_crop(image_t, top, left, height, width, [self.size, self.size], antialias=True)
        mask_t = TF.resized_crop(tv_tensors.Mask(mask_t), top, left, height, width, [self.size, self.size])
        view = torch.tensor([top, left, height, width, 0])
        return image_t, mask_t.as_subclass(torch.Tensor), view
