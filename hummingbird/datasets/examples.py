"""Annotated examples held in memory: images and masks given from Python rather than a dataset folder.

Images may be PIL images, numpy arrays ``(H, W, 3)`` uint8 (or ``(H, W)`` grayscale), torch tensors
``(3, H, W)`` (uint8, or float in ``[0, 1]``) or paths; masks numpy arrays / PIL images ``(H, W)`` of
class indices with 255 ignored (or paths to such PNGs). :class:`ExampleDataset` plugs them into the
same bank-building path as a dataset folder; a bank built from it records ``dataset = "memory"``, the
examples' ids and, where the images were given as files, their paths (see :class:`ExampleSources`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from hummingbird.datasets.base import IGNORE_INDEX, SampleFiles, SegmentationDataset
from hummingbird.datasets.imageio import read_rgb, to_rgb8, upright
from hummingbird.errors import BankError, ConfigError, DatasetError

MEMORY_DATASET = "memory"  # the ``dataset`` a bank built from in-memory examples records


def as_rgb(image, what: str = "image") -> Image.Image:
    """A PIL image, an ``(H, W, 3)`` / ``(H, W)`` array, a ``(3, H, W)`` tensor or a path → 8-bit RGB."""
    if isinstance(image, (str, Path)):
        return read_rgb(image, ConfigError)
    if isinstance(image, Image.Image):
        return to_rgb8(upright(image), what)  # a photo opened by the caller is read upright too
    if isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
        if tensor.ndim == 3 and tensor.shape[0] in (1, 3) and tensor.shape[-1] not in (1, 3):
            tensor = tensor.permute(1, 2, 0)
        if tensor.is_floating_point():
            if not bool(torch.isfinite(tensor).all()):
                raise ConfigError(f"{what}: float tensor holds NaN or infinite values")
            low, high = (float(tensor.min()), float(tensor.max())) if tensor.numel() else (0.0, 0.0)
            if low < 0 or high > 1:
                raise ConfigError(f"{what}: float tensor with values in [{low:g}, {high:g}]; expected an image in "
                                  f"[0, 1] (not normalised; divide 0..255 values by 255)")
            tensor = (tensor * 255).round()
        image = tensor.to(torch.uint8).numpy()
    if isinstance(image, np.ndarray):
        array = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
            raise ConfigError(f"{what}: expected an (H, W, 3) uint8 array, got {array.shape} {array.dtype}")
        return Image.fromarray(array).convert("RGB")
    raise ConfigError(f"{what}: expected a PIL image, an (H, W, 3) uint8 array, a tensor or a path, "
                      f"got {type(image).__name__}")


def as_mask(mask, what: str = "mask") -> np.ndarray:
    """A PIL image, an ``(H, W)`` integer array / tensor or a PNG path → ``(H, W)`` int64 class indices."""
    if isinstance(mask, (str, Path)):
        try:
            with Image.open(mask) as img:
                mask = np.array(img)
        except OSError as exc:
            raise ConfigError(f"{mask}: cannot read mask ({exc})") from exc
    elif isinstance(mask, Image.Image):
        mask = np.array(mask)
    elif isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim != 2 or not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == bool):
        raise ConfigError(f"{what}: expected an (H, W) map of class indices, got {mask.shape} {mask.dtype}")
    return mask.astype(np.int64)


class ExampleDataset(SegmentationDataset):
    """In-memory (image, mask) pairs as a :class:`SegmentationDataset` (``name = "memory"``).

    Args:
        images, masks: equally long sequences (see the module for the accepted types).
        class_names: one name per class (default: ``class_0 ...`` up to the largest mask value).
        ids: one id per example (default: the file stem of path images, else ``example_00000`` ...).
    """

    name = MEMORY_DATASET

    def __init__(self, images: Sequence, masks: Sequence, class_names: Sequence[str] | None = None,
                 transform=None, seed: int = 0, ids: Sequence[str] | None = None, first_id: int = 0):
        images, masks = list(images), list(masks)
        if len(images) != len(masks):
            raise ConfigError(f"{len(images)} images but {len(masks)} masks; give one mask per image")
        if not images:
            raise ConfigError("no examples given")
        self.images = [as_rgb(im, f"image {i}") for i, im in enumerate(images)]
        self.masks = [as_mask(m, f"mask {i}") for i, m in enumerate(masks)]
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

    def read_image(self, index: int) -> Image.Image:
        return self.images[index]

    def read_mask(self, index: int) -> np.ndarray:
        mask = self.masks[index]
        outside = np.unique(mask[(mask != IGNORE_INDEX) & ((mask < 0) | (mask >= self.num_classes))])
        if outside.size:
            raise DatasetError(f"mask {index} ({self.samples[index].id}): values {outside[:10].tolist()} are outside "
                               f"the {self.num_classes} classes [0, {self.num_classes - 1}] and not the ignore "
                               f"index {IGNORE_INDEX}")
        return mask

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
