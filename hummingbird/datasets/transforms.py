"""Paired image/mask transforms.

Each transform maps ``(PIL image, mask (H, W) int64 ndarray, seed)`` to ``(image (3, S, S) float in
[0, 1], mask (S, S) int64, view (5,) int64)``. ``view = (top, left, height, width, flipped)`` is the
region of the source image that the output shows (before a horizontal flip), so every output patch
can be traced back to source pixels (:func:`hummingbird.visual.geometry.patch_box_in_source`). Geometry is
shared between image and mask; masks are always resampled with nearest neighbour; photometric changes
touch the image only. Randomness comes from ``seed`` alone, so a sample's augmentation does not depend
on worker count or order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import ColorJitter, RandomResizedCrop, v2
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


JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


@dataclass(frozen=True)
class OpenHbirdDraw:
    """One image's random draw of :class:`OpenHbirdAugment`.

    Attributes:
        jitter: the factor of each colour operation of :data:`JITTER_OPS` (in that order), ``None`` where
            the operation is skipped.
        box: ``(top, left, height, width)`` of the crop, in source pixels.
    """

    jitter: tuple[float | None, ...]
    box: tuple[int, int, int, int]


class OpenHbirdAugment:
    """open-hummingbird-eval 2.0.0's memory augmentation, reproduced operation for operation.

    1. Colour jitter of the whole image, on the 8-bit Pillow image (torchvision's Pillow kernels, as the
       peer applies ``transforms.ColorJitter`` to the Pillow image it reads): brightness, contrast,
       saturation, hue, in that order, each applied on its own with probability ``jitter_p``, factor
       uniform in ``[1 - jitter, 1 + jitter]`` (hue: ``[-jitter, jitter]``).
    2. To ``[0, 1]`` floats (the peer normalises here; this toolkit's encoder does the same affine map
       after the crop, which commutes with the crop's interpolation up to float rounding).
    3. A random resized crop shared with the mask (torchvision's ``RandomResizedCrop.get_params``): area
       scale ``crop_scale`` = ``(0.5, 2.0)`` of the image, aspect ratio ``(3/4, 4/3)``, ten tries, then a
       central crop; the image resampled bilinearly with antialiasing, the mask with nearest neighbour.

    No flip. Random numbers are drawn in the peer's order (per colour operation: whether it applies, then
    torchvision ``ColorJitter``'s permutation and factor; then the crop's) from torch's CPU generator
    seeded with the sample's ``seed``, so a sample seeded ``s`` gets exactly what the peer's transform
    gives after ``torch.manual_seed(s)``.
    """

    def __init__(self, size: int, crop_scale: tuple[float, float] = (0.5, 2.0), jitter: float = 0.1,
                 jitter_p: float = 0.5):
        self.size, self.crop_scale, self.jitter_p = size, crop_scale, jitter_p
        factor = [max(0.0, 1.0 - jitter), 1.0 + jitter]
        self.jitter_ranges = (factor, factor, factor, [-jitter, jitter])

    def draw(self, height: int, width: int, seed: int) -> OpenHbirdDraw:
        """The random draw for a ``height × width`` image seeded ``seed`` (the global RNG is left as it was)."""
        factors = []
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            for op, bounds in zip(JITTER_OPS, self.jitter_ranges):
                if self.jitter_p < torch.rand(1):  # torchvision RandomApply: skipped
                    factors.append(None)
                    continue
                params = ColorJitter.get_params(*(bounds if name == op else None for name in JITTER_OPS))
                factors.append(params[1 + JITTER_OPS.index(op)])
            box = RandomResizedCrop.get_params(torch.empty(0, height, width), list(self.crop_scale),
                                               [3 / 4, 4 / 3])
        return OpenHbirdDraw(tuple(factors), tuple(int(v) for v in box))

    def apply(self, image: Image.Image, mask: np.ndarray, draw: OpenHbirdDraw):
        """``draw``'s jitter and crop applied to ``image`` and ``mask`` (see the class docstring)."""
        for op, factor in zip(JITTER_OPS, draw.jitter):
            if factor is not None:
                image = getattr(TF, f"adjust_{op}")(image, factor)
        image_t, mask_t = _plain(*_to_tensors(image, mask))
        top, left, height, width = draw.box
        image_t = TF.resized_crop(image_t, top, left, height, width, [self.size, self.size], antialias=True)
        mask_t = TF.resized_crop(tv_tensors.Mask(mask_t), top, left, height, width, [self.size, self.size])
        view = torch.tensor([top, left, height, width, 0])
        return image_t, mask_t.as_subclass(torch.Tensor), view

    def __call__(self, image: Image.Image, mask: np.ndarray, seed: int = 0):
        return self.apply(image, mask, self.draw(image.height, image.width, seed))
