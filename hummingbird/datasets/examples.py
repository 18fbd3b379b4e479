"""Annotated examples held in memory: images and masks given from Python rather than a dataset folder.

Images may be PIL images, numpy arrays or torch tensors — ``(H, W, 3)`` or ``(3, H, W)`` (told from the
shape), ``(H, W)`` grayscale, 4 channels (alpha dropped); uint8, 16-bit or float in ``[0, 1]`` or ``[0, 255]``
— or paths; masks PIL images, arrays or tensors ``(H, W)`` of class indices with 255 ignored (integer, or
float holding whole numbers), or paths to such PNGs. Every one is checked as a file would be (size,
channels, type, value range; a mask of another size than its image) and named as the caller wrote it:
``images[3]``, ``masks[0]``. A single image and mask without a list are taken as one example.

:class:`ExampleDataset` plugs them into the same bank-building path as a dataset folder; a bank built
from it records ``dataset = "memory"``, the examples' ids and, where the images were given as files,
their paths (see :class:`ExampleSources`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from hummingbird.datasets.base import IGNORE_INDEX, SampleFiles, SegmentationDataset
from hummingbird.datasets.imageio import array_to_rgb8, read_rgb, to_rgb8, upright
from hummingbird.errors import BankError, ConfigError, HummingbirdError

MEMORY_DATASET = "memory"  # the ``dataset`` a bank built from in-memory examples records


def _as_array(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor).numpy()


def as_rgb(image, what: str = "image") -> Image.Image:
    """A PIL image, an image array or tensor (see the module) or a path → upright 8-bit RGB; anything else
    raises :class:`ConfigError` naming ``what`` (e.g. ``images[3]``)."""
    if isinstance(image, (str, Path)):
        return read_rgb(image, ConfigError)
    try:
        if isinstance(image, Image.Image):
            return to_rgb8(upright(image), what)  # a photo opened by the caller is read upright too
        if isinstance(image, torch.Tensor):
            image = _as_array(image)
        if isinstance(image, np.ndarray):
            if image.ndim == 4 and image.shape[0] == 1:  # a batch of one
                image = image[0]
            elif image.ndim == 4:
                raise ConfigError(f"{what}: a batch of {image.shape[0]} images (shape {tuple(image.shape)}); give "
                                  f"one image, or a list of images where several are taken")
            return array_to_rgb8(image, what)
    except ConfigError:
        raise
    except HummingbirdError as exc:
        raise ConfigError(str(exc)) from None
    raise ConfigError(f"{what}: expected a PIL image, an image array or tensor ((H, W, 3) or (3, H, W)) or a path, "
                      f"got {type(image).__name__}")


def as_mask(mask, what: str = "mask") -> np.ndarray:
    """A PIL image, an ``(H, W)`` array / tensor of class indices or a PNG path → ``(H, W)`` int64, checked as
    a mask file is (one channel, whole numbers); problems raise :class:`ConfigError` naming ``what``."""
    if isinstance(mask, (str, Path)):
        try:
            with Image.open(mask) as img:
                what, mask = f"{what} ({mask})", np.array(img)
        except FileNotFoundError:
            raise ConfigError(f"{what}: mask file {mask} not found") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ConfigError(f"{what}: cannot read mask {mask}, unreadable or truncated ({exc})") from None
    elif isinstance(mask, Image.Image):
        mask = np.array(mask)
    elif isinstance(mask, torch.Tensor):
        mask = _as_array(mask)
    if not isinstance(mask, np.ndarray):
        raise ConfigError(f"{what}: expected an (H, W) array, tensor or PIL image of class indices, or a PNG path, "
                          f"got {type(mask).__name__}")
    if mask.ndim == 3 and 1 in (mask.shape[0], mask.shape[-1]):
        mask = mask.reshape(mask.shape[1:] if mask.shape[0] == 1 else mask.shape[:-1])
    if mask.ndim == 3 and mask.shape[-1] in (3, 4):
        raise ConfigError(f"{what}: mask is a {mask.shape[-1]}-channel colour image (RGB palette colours?); expected "
                          f"(H, W) class indices (0..C-1, 255 ignored)")
    if mask.ndim != 2 or 0 in mask.shape:
        raise ConfigError(f"{what}: a mask of shape {tuple(mask.shape)}; expected (H, W) class indices")
    if mask.dtype.kind == "f":
        finite = np.isfinite(mask)
        fractional = ~finite | (mask != np.round(np.where(finite, mask, 0)))
        if fractional.any():
            example = mask[fractional][0]
            raise ConfigError(f"{what}: float mask holds values that are not class indices (e.g. {example:g}); "
                              f"expected whole numbers 0..C-1 and 255 (ignored)")
    elif mask.dtype.kind not in "biu":
        raise ConfigError(f"{what}: a {mask.dtype} mask; expected integer class indices")
    return mask.astype(np.int64)


def _listed(value, name: str, single_ndim: int) -> list:
    """``value`` as a list of examples: a single image or mask (a path, a PIL image, an array of at most
    ``single_ndim`` dimensions) becomes a list of one; a batch array (one more dimension) a list of its items."""
    if isinstance(value, (str, Path, Image.Image)):
        return [value]
    if isinstance(value, (np.ndarray, torch.Tensor)):
        if value.ndim <= single_ndim or (single_ndim == 2 and value.ndim == 3 and value.shape[-1] == 1):
            return [value]
        if value.ndim == single_ndim + 1:
            return list(value)
        raise ConfigError(f"{name}: a {value.ndim}-D array (shape {tuple(value.shape)}); give a list, or a batch "
                          f"of {single_ndim + 1} dimensions")
    if isinstance(value, dict):
        raise ConfigError(f"{name}: a dict; give a list (or one {name[:-1]})")
    try:
        return list(value)
    except TypeError:
        raise ConfigError(f"{name}: expected a list of {name} (or one), got {type(value).__name__}") from None


class ExampleDataset(SegmentationDataset):
    """In-memory (image, mask) pairs as a :class:`SegmentationDataset` (``name = "memory"``).

    Args:
        images, masks: equally long sequences, or one image and one mask (see the module for the accepted
            types); checked here, each problem named as ``images[i]`` / ``masks[i]``.
        class_names: one name per class (default: ``class_0 ...`` up to the largest mask value).
        ids: one id per example (default: the file stem of path images, else ``example_00000`` ...).
    """

    name = MEMORY_DATASET

    def __init__(self, images: Sequence, masks: Sequence, class_names: Sequence[str] | None = None,
                 transform=None, seed: int = 0, ids: Sequence[str] | None = None, first_id: int = 0):
        images, masks = _listed(images, "images", 3), _listed(masks, "masks", 2)
        if len(images) != len(masks):
            raise ConfigError(f"{len(images)} images but {len(masks)} masks; give one mask per image")
        if not images:
            raise ConfigError("images: no examples given")
        self.images = [as_rgb(im, f"images[{i}]") for i, im in enumerate(images)]
        self.masks = [as_mask(m, f"masks[{i}]") for i, m in enumerate(masks)]
        for i, (image, mask) in enumerate(zip(self.images, self.masks)):
            if mask.shape != (image.height, image.width):
                raise ConfigError(f"masks[{i}]: mask is {mask.shape[1]}x{mask.shape[0]} but images[{i}] is "
                                  f"{image.width}x{image.height}")
        self.files = [Path(im).resolve() if isinstance(im, (str, Path)) else None for im in images]
        if ids is None:
            ids = [f.stem if f is not None else f"example_{first_id + i:05d}" for i, f in enumerate(self.files)]
        if len(set(ids)) != len(ids):
            raise ConfigError("example ids must be distinct")
        if class_names is None:
            labelled = [m[m != IGNORE_INDEX] for m in self.masks]
            class_names = [f"class_{c}" for c in range(max(int(v.max(initial=0)) for v in labelled) + 1)]
        samples = [SampleFiles(i, f or Path(f"<{i}>"), Path(f"<{i} mask>")) for i, f in zip(ids, self.files)]
        super().__init__(Path("."), MEMORY_DATASET, samples, class_names, transform, seed)
        for i, mask in enumerate(self.masks):
            outside = np.unique(mask[(mask != IGNORE_INDEX) & ((mask < 0) | (mask >= self.num_classes))])
            if outside.size:
                raise ConfigError(f"masks[{i}]: mask values {outside[:10].tolist()} are outside the "
                                  f"{self.num_classes} classes [0, {self.num_classes - 1}] and not the ignore index "
                                  f"{IGNORE_INDEX}")

    def read_image(self, index: int) -> Image.Image:
        return self.images[index]

    def read_mask(self, index: int) -> np.ndarray:
        return self.masks[index]

    def load_sample(self, index: int) -> tuple[Image.Image, np.ndarray]:
        image = self.images[index]
        if min(image.width, image.height) < self.min_side:
            raise ConfigError(f"images[{index}]: image is {image.width}x{image.height}, smaller than one "
                              f"{self.min_side}-px patch")
        return image, self.masks[index]

    def with_transform(self, transform) -> "ExampleDataset":
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__, transform=transform)
        return clone


class ExampleSources:
    """The source images of a bank built from in-memory examples, for neighbour pictures: held in
    memory (``images``), or files — the recorded paths of examples given as files, else
    ``<folder>/<id>.png`` (the folder :meth:`hummingbird.Segmenter.save` writes beside the bank)."""

    def __init__(self, ids: Sequence[str], images: Sequence[Image.Image | None] | None = None,
                 files: Sequence[str | None] | None = None, folder: str | Path | None = None):
        self.ids = list(ids)
        self.images = list(images) if images is not None else [None] * len(self.ids)
        self.files = list(files) if files is not None else [None] * len(self.ids)
        self.folder = Path(folder) if folder is not None else None

    def path(self, image_index: int) -> Path | None:
        recorded = self.files[image_index]
        if recorded is not None:
            return Path(recorded)
        return self.folder / f"{self.ids[image_index]}.png" if self.folder is not None else None

    def open(self, image_index: int) -> Image.Image:
        if self.images[image_index] is not None:
            return self.images[image_index]
        path = self.path(image_index)
        if path is None or not path.is_file():
            raise BankError(f"source image {image_index} ({self.ids[image_index]}) of the bank is missing ({path})")
        return read_rgb(path, BankError)
