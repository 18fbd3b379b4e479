"""Videos for label propagation: any folder of frames, and the DAVIS-2017 layout with its object masks.

* :class:`FrameFolder` — the frames of one video, a folder of ``.jpg``/``.jpeg``/``.png`` files taken in
  name order (the stem names the output ``<stem>.png``). Every frame must have the same size.
* :class:`DavisDataset` — a DAVIS root: ``JPEGImages/<resolution>/<seq>/NNNNN.jpg`` and
  ``Annotations/<resolution>/<seq>/NNNNN.png``; the sequences are those of
  ``ImageSets/<year>/<split>.txt`` when a split is given, else every sequence folder present.
* :func:`read_object_mask` — an annotation as object ids ``(H, W)`` uint8 and its void pixels: a palette
  (``P``) PNG holds the ids (DAVIS-2017; 255 = void), a grey (``L``) PNG holding only 0 and 255 is a
  DAVIS-2016 binary mask (255 → object 1, as a DAVIS-2017 loader maps it), another grey PNG holds the ids.

Frames are decoded with OpenCV (``cv2.imread``, as DINO's ``eval_video_segmentation.py`` reads them: the
``dino`` protocol's inputs are then bit-identical to the reference). Problems are one line naming the file:
an empty folder, frames of mixed sizes, an unreadable frame or mask, a mask that is a colour picture or
16-bit, a first mask whose size differs from the frames (:func:`check_first_mask`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from hummingbird.errors import ConfigError, DatasetError
from hummingbird.files.textfiles import read_lines

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
VOID_ID = 255  # DAVIS-2017: pixels not scored


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the file's header."""
    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read image, unreadable or truncated ({exc})") from None


def read_frame_bgr(path: str | Path) -> np.ndarray:
    """A frame ``(H, W, 3)`` uint8 in OpenCV's BGR order (EXIF orientation applied, as ``cv2.imread`` does)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: frame file not found")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: cannot read frame, unreadable or not an image")
    return image


def read_object_mask(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """An annotation → object ids ``(H, W)`` uint8 (0 = background) and void pixels ``(H, W)`` bool."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            mode = img.mode
            values = np.array(img)
    except FileNotFoundError:
        raise DatasetError(f"{path}: mask file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, not a mask file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read mask, unreadable or truncated ({exc})") from None
    if mode == "1":
        ids = values.astype(np.uint8)
        return ids, np.zeros(ids.shape, bool)
    if mode == "P":
        return values.astype(np.uint8), values == VOID_ID
    if mode == "L":
        if np.isin(values, (0, 255)).all():  # DAVIS-2016 binary: 255 is the object
            return (values == 255).astype(np.uint8), np.zeros(values.shape, bool)
        return values, values == VOID_ID
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise DatasetError(f"{path}: a {mode} (16/32-bit) image; an object mask is an 8-bit palette PNG of "
                           f"object ids (0 = background)")
    raise DatasetError(f"{path}: a {mode} colour picture; an object mask is an 8-bit palette (P) or grey (L) "
                       f"PNG of object ids (0 = background)")


@dataclass(frozen=True)
class FrameFolder:
    """The frames of one video, in name order, all of one size ``(width, height)``."""

    folder: Path
    frames: tuple[Path, ...]
    size: tuple[int, int]

    @classmethod
    def open(cls, folder: str | Path) -> FrameFolder:
        """Read ``folder``'s frame list and check it (one line naming the file for each problem)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise DatasetError(f"{folder}: {'is a file, not' if folder.exists() else 'no such'} folder of frames")
        frames = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()))
        if not frames:
            raise DatasetError(f"{folder}: empty folder, no frames ({', '.join(FRAME_SUFFIXES)}) in it")
        stems = {}
        for path in frames:
            if path.stem in stems:
                raise DatasetError(f"{path}: two frames named {path.stem} ({stems[path.stem].name}); each frame "
                                   f"writes <stem>.png")
            stems[path.stem] = path
        size = _image_size(frames[0])
        for path in frames[1:]:
            other = _image_size(path)
            if other != size:
                raise DatasetError(f"{path}: frames of mixed sizes, {other[0]}x{other[1]} where {frames[0].name} "
                                   f"is {size[0]}x{size[1]}")
        return cls(folder, frames, size)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def stems(self) -> list[str]:
        return [p.stem for p in self.frames]

    def read(self, i: int) -> np.ndarray:
        """Frame ``i`` as ``(H, W, 3)`` uint8 BGR, checked against the folder's size."""
        image = read_frame_bgr(self.frames[i])
        if (image.shape[1], image.shape[0]) != self.size:
            raise DatasetError(f"{self.frames[i]}: frames of mixed sizes, {image.shape[1]}x{image.shape[0]} "
                               f"where {self.frames[0].name} is {self.size[0]}x{self.size[1]}")
        return image

    def first(self, n: int | None) -> FrameFolder:
        """The first ``n`` frames (all for ``None``)."""
        return self if n is None else FrameFolder(self.folder, self.frames[:n], self.size)


def check_first_mask(ids: np.ndarray, path: str | Path, frames: FrameFolder) -> None:
    """Refuse a first mask whose size differs from the frames', or one without any object."""
    if (ids.shape[1], ids.shape[0]) != frames.size:
        raise DatasetError(f"{path}: first mask is {ids.shape[1]}x{ids.shape[0]} but the frames in "
                           f"{frames.folder} are {frames.size[0]}x{frames.size[1]}")
    if not ((ids > 0) & (ids != VOID_ID)).any():
        raise DatasetError(f"{path}: the first mask holds no object (every pixel is 0, background)")


class DavisDataset:
    """A DAVIS root (``JPEGImages/<resolution>/<seq>/``, ``Annotations/<resolution>/<seq>/``)."""

    def __init__(self, root: str | Path, sequences: Sequence[str] | None = None, split: str | None = None,
                 resolution: str = "480p", year: str = "2017"):
        self.root, self.resolution, self.split = Path(root), resolution, split
        self.images = self.root / "JPEGImages" / resolution
        self.annotations = self.root / "Annotations" / resolution
        for folder in (self.images, self.annotations):
            if not folder.is_dir():
                raise DatasetError(f"{folder}: no such folder; a DAVIS root holds JPEGImages/{resolution}/<seq>/ "
                                   f"and Annotations/{resolution}/<seq>/")
        if split is not None:
            listing = self.root / "ImageSets" / year / f"{split}.txt"
            if not listing.is_file():
                raise DatasetError(f"{listing}: no such split file (--split {split})")
            available = [s.strip() for s in read_lines(listing) if s.strip()]
        else:
            available = sorted(p.name for p in self.images.iterdir() if p.is_dir())
        if not available:
            raise DatasetError(f"{self.images}: empty folder, no sequence folders in it")
        if sequences:
            unknown = [s for s in sequences if s not in available]
            if unknown:
                raise ConfigError(f"--sequences {unknown[0]}: not a sequence of {self.root} "
                                  f"({', '.join(available[:8])}{' ...' if len(available) > 8 else ''})")
            available = list(dict.fromkeys(sequences))
        self.sequences = list(available)

    def frames(self, sequence: str) -> FrameFolder:
        return FrameFolder.open(self.images / sequence)

    def annotation_files(self, sequence: str) -> list[Path]:
        folder = self.annotations / sequence
        if not folder.is_dir():
            raise DatasetError(f"{folder}: no such annotation folder")
        files = sorted(folder.glob("*.png"))
        if not files:
            raise DatasetError(f"{folder}: empty folder, no annotation PNGs in it")
        return files

    def first_mask(self, sequence: str) -> Path:
        """The annotation of the sequence's first frame."""
        first = self.frames(sequence).frames[0]
        path = self.annotations / sequence / f"{first.stem}.png"
        if not path.is_file():
            raise DatasetError(f"{path}: first-frame annotation not found")
        return path

    def ground_truth(self, sequence: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Frame stems, object ids ``(T, H, W)`` uint8 and void pixels ``(T, H, W)`` bool of a sequence."""
        files = self.annotation_files(sequence)
        masks = [read_object_mask(f) for f in files]
        shape = masks[0][0].shape
        for f, (ids, _) in zip(files, masks):
            if ids.shape != shape:
                raise DatasetError(f"{f}: masks of mixed sizes, {ids.shape[1]}x{ids.shape[0]} where {files[0].name} "
                                   f"is {shape[1]}x{shape[0]}")
        return [f.stem for f in files], np.stack([m[0] for m in masks]), np.stack([m[1] for m in masks])

    def describe(self) -> dict:
        return {"dataset": "davis", "data_root": str(self.root), "resolution": self.resolution,
                "split": self.split, "sequences": list(self.sequences)}


def read_predictions(folder: str | Path, stems: Sequence[str], shape: tuple[int, int]) -> np.ndarray:
    """Predicted object ids ``(T, H, W)`` from ``folder/<stem>.png`` for every stem (as the official toolkit
    reads a results folder: one PNG per annotated frame, the palette indices are the ids)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such predictions folder")
    out = np.zeros((len(stems), *shape), np.uint8)
    for i, stem in enumerate(stems):
        path = folder / f"{stem}.png"
        if not path.is_file():
            raise DatasetError(f"{path}: prediction not found (one <frame>.png per annotated frame)")
        ids = read_object_mask(path)[0]
        if ids.shape != shape:
            raise DatasetError(f"{path}: prediction is {ids.shape[1]}x{ids.shape[0]}, the annotation is "
                               f"{shape[1]}x{shape[0]}")
        out[i] = ids
    return out
