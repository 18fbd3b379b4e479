"""Segmenting images of any shape without squashing them into a square.

Three ways to turn an image of ``H × W`` pixels into network inputs for an ``S``-pixel setting
(``S``: the bank's input size, a multiple of the patch size ``p``):

* ``square``: the whole image resized to ``S × S`` (aspect ratio lost; a 6000×4000 photo becomes S²);
* ``aspect``: the short side resized to ``S`` and the long side to the nearest multiple of ``p``
  (aspect ratio kept within half a patch), encoded in one pass on its ``h × w`` patch grid;
* ``slide``: resized as ``aspect``, then covered by ``S × S`` windows (stride ``2S/3`` rounded to
  patches) whose patch-grid label distributions are averaged where they overlap.

Each gives patch-grid label distributions ``(1, h, w, C)`` from the decoder's
:meth:`~hummingbird.memory.decoder.HummingbirdDecoder.patch_distributions`, which
:meth:`~hummingbird.memory.decoder.HummingbirdDecoder.upsample` turns into a label map at the image's own size.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from hummingbird.catalog import RESIZE_MODES  # noqa: F401 (re-exported)
from hummingbird.errors import ConfigError


def input_shape(height: int, width: int, size: int, patch_size: int, mode: str) -> tuple[int, int]:
    """Network input ``(h_in, w_in)`` in pixels for an ``height × width`` image (``slide``: the resized
    image the windows cover)."""
    if mode == "square":
        return size, size
    if mode not in ("aspect", "slide"):
        raise ConfigError(f"unknown resize mode {mode!r}; use one of {', '.join(RESIZE_MODES)}")
    scale = size / min(height, width)
    return (max(patch_size, round(height * scale / patch_size) * patch_size),
            max(patch_size, round(width * scale / patch_size) * patch_size))


def resize_image(image: Image.Image, shape: tuple[int, int]) -> torch.Tensor:
    """RGB ``image`` → ``(3, h_in, w_in)`` float in ``[0, 1]``, resized by Pillow (bilinear, antialiased)
    as :class:`~hummingbird.datasets.transforms.EvalResize` does, so ``square`` equals the evaluation resize."""
    resized = image.convert("RGB").resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(resized, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255


def window_starts(length: int, window: int, stride: int, patch_size: int) -> list[int]:
    """Offsets of windows of ``window`` pixels covering ``length`` pixels, about ``stride`` apart,
    evenly spread from 0 to ``length - window`` and on the patch grid (all sizes multiples of
    ``patch_size``)."""
    if length <= window:
        return [0]
    count = math.ceil((length - window) / stride) + 1
    offsets = (i * (length - window) // (count - 1) for i in range(count))
    return sorted({o - o % patch_size for o in offsets})


def _device_of(features) -> torch.device:
    return next(features.encoder.parameters()).device


def sliding_distributions(features, decoder, image: torch.Tensor, window: int, patch_size: int,
                          batch_size: int = 8, image_id: str | None = None) -> torch.Tensor:
    """Image ``(3, H, W)`` (sides multiples of ``patch_size``) → ``(1, H/p, W/p, C)`` label distributions,
    the mean over the ``window``-square crops that cover each patch."""
    _, height, width = image.shape
    stride = max(patch_size, round(window * 2 / 3 / patch_size) * patch_size)
    win_h, win_w = min(window, height), min(window, width)
    p = patch_size
    starts = [(top, left) for top in window_starts(height, win_h, stride, p)
              for left in window_starts(width, win_w, stride, p)]
    total = None
    count = torch.zeros(height // p, width // p, 1)
    for first in range(0, len(starts), batch_size):
        chunk = starts[first:first + batch_size]
        crops = torch.stack([image[:, t:t + win_h, left:left + win_w] for t, left in chunk])
        feats = features(crops.to(_device_of(features)), [image_id] * len(chunk) if image_id else None).cpu()
        dists = decoder.patch_distributions(feats)  # (n, h, w, C)
        if total is None:
            total = torch.zeros(height // p, width // p, dists.shape[-1])
        for (t, left), dist in zip(chunk, dists):
            total[t // p:t // p + win_h // p, left // p:left // p + win_w // p] += dist
            count[t // p:t // p + win_h // p, left // p:left // p + win_w // p] += 1
    return (total / count)[None]


def patch_distributions(features, decoder, image: Image.Image, size: int, mode: str, batch_size: int = 8,
                        image_id: str | None = None) -> torch.Tensor:
    """Label distributions ``(1, h, w, C)`` of ``image``'s patch grid in ``mode`` (see the module)."""
    shape = input_shape(image.height, image.width, size, features.patch_size, mode)
    pixels = resize_image(image, shape)
    if mode == "slide":
        return sliding_distributions(features, decoder, pixels, size, features.patch_size, batch_size, image_id)
    feats = features(pixels[None].to(_device_of(features)), [image_id] if image_id else None).cpu()
    return decoder.patch_distributions(feats)


def segment_image(features, decoder, image: Image.Image, size: int, mode: str, batch_size: int = 8,
                  image_id: str | None = None) -> np.ndarray:
    """Label map ``(H, W)`` int64 of ``image`` at its own resolution, segmented in ``mode`` (``image_id``:
    for feature sources that skip the image's own support patches, FUNGI)."""
    dists = patch_distributions(features, decoder, image, size, mode, batch_size, image_id)
    return decoder.upsample(dists, (image.height, image.width))[0].numpy()
