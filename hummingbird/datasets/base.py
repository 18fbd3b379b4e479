"""What every segmentation dataset shares: sample files, the dataset class its layouts subclass, and the
readers of class lists and id lists.

Every dataset yields ``{"image": (3, S, S) float, "mask": (S, S) int64, "view": (5,) int64, "index": int,
"id": str}`` after its paired transform (``view``: the source region shown, see
:mod:`hummingbird.datasets.transforms`); mask values are class indices in ``[0, num_classes)`` or
``IGNORE_INDEX`` (255).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from hummingbird.datasets.imageio import is_high_bit_depth, read_rgb_stored, stored_image
from hummingbird.errors import DatasetError, Once, option, warn
from hummingbird.files.textfiles import read_lines

IGNORE_INDEX = 255

PairedTransform = Callable[[Image.Image, np.ndarray, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class SampleFiles:
    """One annotated image on disk."""

    id: str
    image: Path
    mask: Path | None


class SegmentationDataset(torch.utils.data.Dataset):
    """A list of image/mask files, a class list, and a paired transform.

    ``seed`` and ``epoch`` fix each sample's augmentation: sample ``i`` of epoch ``e`` always gets
    the same random crop, whatever the batch size or number of loader workers.
    """

    name = "folder"

    def __init__(self, root: Path, split: str, samples: Sequence[SampleFiles], class_names: Sequence[str],
                 transform: PairedTransform | None = None, seed: int = 0):
        if not samples:
            raise DatasetError(f"{root}: split {split!r} has no images")
        self.root, self.split = Path(root), split
        self.samples = list(samples)
        self.class_names = tuple(class_names)
        self.transform = transform
        self.seed, self.epoch = seed, 0
        self.min_side = 1  # callers set the backbone's patch size
        self._conversion_noted = Once()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.samples)

    def decode_mask(self, raw: np.ndarray) -> np.ndarray:
        """Raw mask file values → class indices with ``IGNORE_INDEX`` (identity by default)."""
        return raw

    def read_image(self, index: int) -> Image.Image:
        """Upright 8-bit RGB image (EXIF orientation applied); grayscale, palette, CMYK and RGBA images are
        converted, 16-bit and float ones scaled to 0..255 (:mod:`hummingbird.datasets.imageio`; one warning per
        dataset, also with several loader workers)."""
        path = self.samples[index].image
        image, stored = read_rgb_stored(path)
        if stored.mode != "RGB" and self._conversion_noted.claim():
            scaled = " scaled to 8 bits and" if is_high_bit_depth(stored.mode) else ""
            warn(f"{path}: {stored.mode} image{scaled} converted to RGB (further conversions in {self.root} are "
                 f"not reported)")
        return image

    def read_mask(self, index: int) -> np.ndarray:
        """Mask ``(H, W)`` int64 of class indices and ``IGNORE_INDEX``."""
        path = self.samples[index].mask
        if path is None:
            raise DatasetError(f"{self.samples[index].image}: no mask for this image")
        try:
            with Image.open(path) as img:
                raw = np.array(img)
        except (OSError, SyntaxError, ValueError) as exc:
            raise DatasetError(f"{path}: cannot read mask, unreadable or truncated ({exc})") from exc
        if raw.ndim != 2:
            raise DatasetError(f"{path}: mask is a {raw.shape[-1]}-channel colour image (RGB palette colours?); "
                               f"expected a single-channel PNG of class indices (e.g. a palette-mode PNG "
                               f"as in VOC SegmentationClass, or grayscale values 0..C-1 and 255)")
        mask = self.decode_mask(raw.astype(np.int64))
        outside = np.unique(mask[(mask != IGNORE_INDEX) & ((mask < 0) | (mask >= self.num_classes))])
        if outside.size:
            raise DatasetError(f"{path}: mask values {outside[:10].tolist()} are outside the {self.num_classes} "
                               f"classes [0, {self.num_classes - 1}] and not the ignore index {IGNORE_INDEX}")
        return mask

    def load_sample(self, index: int) -> tuple[Image.Image, np.ndarray]:
        """Read and check one image and its mask (sizes agree, image at least ``min_side`` px)."""
        image, mask = self.read_image(index), self.read_mask(index)
        if mask.shape != (image.height, image.width):
            turned = stored_image(self.samples[index].image)
            why = (f" (the image is stored turned, EXIF orientation {turned.orientation}, and read upright as viewers "
                   f"show it; the mask must be upright too)" if turned.turned else "")
            raise DatasetError(f"{self.samples[index].mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its "
                               f"image is {image.width}x{image.height}{why}")
        if min(image.width, image.height) < self.min_side:
            raise DatasetError(f"{self.samples[index].image}: image is {image.width}x{image.height}, smaller than "
                               f"one {self.min_side}-px patch")
        return image, mask

    def sample_seed(self, index: int) -> int:
        """Seed of sample ``index``'s augmentation in the current epoch."""
        return zlib.crc32(f"{self.seed}/{self.epoch}/{index}".encode())

    def __getitem__(self, index: int) -> dict:
        image, mask = self.load_sample(index)
        if self.transform is None:
            image_t = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255
            mask_t, view = torch.from_numpy(mask), torch.tensor([0, 0, image.height, image.width, 0])
        else:
            image_t, mask_t, view = self.transform(image, mask, self.sample_seed(index))
        return {"image": image_t, "mask": mask_t, "view": view, "index": index, "id": self.samples[index].id}

    def first(self, count: int | None) -> "SegmentationDataset":
        """The first ``count`` images (all when ``count`` is ``None``), e.g. for smoke runs."""
        return self if count is None else self.subset([s.id for s in self.samples[:count]], "first images")

    def subset(self, ids: Sequence[str], source: str = "file set") -> "SegmentationDataset":
        """The same dataset restricted to ``ids`` (in the order given)."""
        by_id = {s.id: s for s in self.samples}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise DatasetError(f"{source}: {len(missing)} ids are not in split {self.split!r} of {self.root}: "
                               f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.samples = [by_id[i] for i in ids]
        return clone


def read_class_names(path: Path, num_classes: int | None = None) -> list[str]:
    """Class names from ``classes.txt`` (one per line, blank lines skipped), checked against
    ``num_classes`` when given and against the 255 indices an 8-bit mask can hold besides ignore."""
    names = read_lines(path, "class list")
    if not names:
        raise DatasetError(f"{path}: lists no class names")
    if num_classes is not None and num_classes != len(names):
        raise DatasetError(f"{path}: lists {len(names)} classes but {option('num_classes')} is {num_classes}")
    if len(names) > IGNORE_INDEX:
        raise DatasetError(f"{path}: lists {len(names)} classes; masks hold at most {IGNORE_INDEX} (255 is ignored)")
    return names


def read_id_list(path: str | Path) -> list[str]:
    """Ids from a text file, one per line (first whitespace-separated field; blank lines skipped)."""
    ids = [line.split()[0] for line in read_lines(path, "id list")]
    if not ids:
        raise DatasetError(f"{path}: id list is empty")
    return [Path(i).stem if "/" in i else i for i in ids]


def first_existing(root: Path, relative: Sequence[str]) -> Path | None:
    return next((root / r for r in relative if (root / r).is_file()), None)


def require_files(samples: Sequence[SampleFiles], root: Path) -> None:
    missing = [str(p) for s in samples for p in (s.image, s.mask) if p is not None and not p.is_file()]
    if missing:
        raise DatasetError(f"{root}: {len(missing)} listed files are missing: {', '.join(missing[:3])}"
                           f"{' ...' if len(missing) > 3 else ''}")
