"""RGB-D datasets for in-context depth: an RGB image, its depth in metres and the mask of valid pixels.

Layouts (``open_depth_dataset(kind, root, split)``):

* ``nyu``, DenseDepth (``nyu_data.zip`` unpacked): ``nyu2_<split>.csv`` (in ``root`` or ``root/data``) lists
  ``image,depth`` pairs, one per line, resolved against the CSV's folder, ``root`` and the folder above
  it. Test depth: 16-bit PNG in millimetres. Train depth (``nyu2_train/<scene>/N.png``): DenseDepth's 8-bit
  PNG where 255 is 10 m; accepted for ``--split train`` only.
* ``nyu``, BTS "sync": ``rgb_NNNNN.jpg`` with ``sync_depth_NNNNN.png`` (16-bit mm, 0 = no measurement) in
  the same folder, or in a sibling ``depth/`` folder of an ``rgb/`` folder. Split ``test`` reads
  ``root/official_splits/test`` and ``train`` reads ``root/sync`` when those exist (else ``root``);
  ``root/nyudepthv2_<split>_files_with_gt.txt`` (BTS's ``rgb depth focal`` lines) fixes the list when present.
  A root without a CSV is read as BTS sync.
* ``folder``: ``images/`` and ``depth/`` (16-bit PNG ``<image stem>.png``, 0 = invalid) of any camera,
  ``depth_scale`` stored units per metre (1000: millimetres, 256: KITTI, 5000: TUM). Split ``all`` takes
  every image; another split reads ``images/<split>/`` + ``depth/<split>/`` or the ids of
  ``splits/<split>.txt``.

NYU's 640×480 frames have a white border (measured on the 30 labelled and 3 raw frames of ``../shared``:
content rows 6…473, columns 6–7…631); :data:`NYU_CONTENT_BOX` keeps a 2–3 px margin inside it. For ``nyu``
the model sees only that box of a 640×480 frame (``DepthSample.box``); predictions fill the border by
replicating the box's edge. Both Eigen crops lie inside the box.

A sample is ``DepthSample(id, image (RGB PIL), depth (H, W) float32 metres with 0 where invalid, valid
(H, W) bool, box)``. Problems are one-line :class:`~hummingbird.errors.DatasetError` naming the file: an
8-bit depth PNG, a colour or float depth image, all-invalid depth, image and depth of different sizes, an
empty folder, a listed file that is missing.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from hummingbird.catalog import DEPTH_DATASET_KINDS, IMAGE_SUFFIXES
from hummingbird.datasets.imageio import read_rgb
from hummingbird.errors import DatasetError
from hummingbird.files.textfiles import read_lines, read_text

NYU_SIZE = (480, 640)  # (H, W) of NYU Depth v2 frames
#: ``(top, bottom, left, right)`` of NYU's 640×480 frames inside the white border (stop exclusive): 464×620.
NYU_CONTENT_BOX = (8, 472, 10, 630)
#: DenseDepth's 8-bit training depth: value 255 is its 10 m maximum.
DENSEDEPTH_8BIT_UNITS_PER_METRE = 25.5
DEPTH_DATASETS = DEPTH_DATASET_KINDS  # the layouts this module reads, by --dataset name
_RGB_NAME = re.compile(r"^rgb_(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)


@dataclass(frozen=True)
class DepthFiles:
    """One RGB-D pair on disk."""

    id: str
    image: Path
    depth: Path


@dataclass
class DepthSample:
    """One RGB-D pair read: ``depth`` metres ``(H, W)`` float32, 0 where ``valid`` is False; ``box`` =
    ``(top, bottom, left, right)``, the region the model sees (the whole frame unless it has a border)."""

    id: str
    image: Image.Image
    depth: np.ndarray
    valid: np.ndarray
    box: tuple[int, int, int, int]


def read_depth_png(path: str | Path, units_per_metre: float, allow_8bit: bool = False) -> np.ndarray:
    """A single-channel 16-bit depth PNG → ``(H, W)`` float32 metres (0 stays 0: invalid). An 8-bit file
    is refused (a picture of depth, not a measurement) unless ``allow_8bit``."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            mode, values = image.mode, np.asarray(image)
    except FileNotFoundError:
        raise DatasetError(f"{path}: depth file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read depth image, unreadable or truncated ({exc})") from exc
    if values.ndim != 2:
        raise DatasetError(f"{path}: depth image has {values.shape[-1]} channels (mode {mode}); expected one "
                           f"16-bit channel of depth values")
    if mode in ("L", "P", "1") and not allow_8bit:
        raise DatasetError(f"{path}: depth PNG is 8-bit (mode {mode}); expected 16-bit depth values (an 8-bit "
                           f"file is a picture of depth, its values are not distances)")
    if mode == "F":
        raise DatasetError(f"{path}: depth image is floating point (mode F); expected a 16-bit PNG")
    if mode == "I" and (values.min(initial=0) < 0 or values.max(initial=0) > 65535):
        raise DatasetError(f"{path}: depth image holds values outside 0..65535 (mode I)")
    if mode not in ("L", "P", "1", "I", "I;16", "I;16B", "I;16L"):
        raise DatasetError(f"{path}: depth image has unsupported mode {mode}; expected a 16-bit PNG")
    return (values.astype(np.float64) / units_per_metre).astype(np.float32)


def valid_depth(depth: np.ndarray) -> np.ndarray:
    """Valid pixels of a depth map: finite and positive (0 and NaN mark a missing measurement)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(depth) & (depth > 0)


def frame_box(height: int, width: int, border: str | None) -> tuple[int, int, int, int]:
    """The region of an ``height × width`` frame the model sees: NYU's content box for a 640×480 frame
    when ``border == "nyu"``, else the whole frame."""
    if border == "nyu" and (height, width) == NYU_SIZE:
        return NYU_CONTENT_BOX
    return (0, height, 0, width)


class DepthDataset:
    """RGB-D pairs of one split; ``dataset[i]`` reads and checks pair ``i`` (:class:`DepthSample`)."""

    def __init__(self, name: str, layout: str, root: str | Path, split: str, files: Sequence[DepthFiles],
                 units_per_metre: float = 1000.0, border: str | None = None, allow_8bit: bool = False):
        if not files:
            raise DatasetError(f"{root}: split {split!r} has no RGB-D pairs")
        if not units_per_metre > 0:
            raise DatasetError(f"{root}: --depth-scale must be positive (stored units per metre), "
                               f"got {units_per_metre}")
        self.name, self.layout, self.root, self.split = name, layout, Path(root), split
        self.files = list(files)
        self.units_per_metre, self.border, self.allow_8bit = float(units_per_metre), border, allow_8bit

    def __len__(self) -> int:
        return len(self.files)

    @property
    def ids(self) -> list[str]:
        return [f.id for f in self.files]

    def units_of(self, path: Path) -> float:
        """Stored units per metre of depth file ``path`` (DenseDepth's 8-bit train files: 25.5)."""
        if self.allow_8bit:
            try:
                with Image.open(path) as image:
                    if image.mode in ("L", "P"):
                        return DENSEDEPTH_8BIT_UNITS_PER_METRE
            except (OSError, SyntaxError, ValueError):
                pass  # read_depth_png names the problem
        return self.units_per_metre

    def read_depth(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Depth ``(H, W)`` metres (0 where invalid) and valid mask of pair ``index``; all-invalid is refused."""
        path = self.files[index].depth
        depth = read_depth_png(path, self.units_of(path), self.allow_8bit)
        valid = valid_depth(depth)
        if not valid.any():
            raise DatasetError(f"{path}: no valid depth pixel (every value is 0)")
        return np.where(valid, depth, 0).astype(np.float32), valid

    def __getitem__(self, index: int) -> DepthSample:
        files = self.files[index]
        image = read_rgb(files.image)
        depth, valid = self.read_depth(index)
        if depth.shape != (image.height, image.width):
            raise DatasetError(f"{files.depth}: depth is {depth.shape[1]}x{depth.shape[0]} but its image "
                               f"{files.image.name} is {image.width}x{image.height}; they must be pixel-aligned")
        return DepthSample(files.id, image, depth, valid, frame_box(*depth.shape, self.border))

    def restricted(self, ids_file: str | Path) -> DepthDataset:
        """The same dataset restricted to the ids listed in ``ids_file`` (one per line, in that order)."""
        wanted = read_lines(ids_file, "id list")
        by_id = {f.id: f for f in self.files}
        unknown = [i for i in wanted if i not in by_id]
        if unknown:
            raise DatasetError(f"{ids_file}: {len(unknown)} ids are not in {self.root} [{self.split}]: "
                               f"{', '.join(unknown[:5])}")
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__, files=[by_id[i] for i in wanted])
        return clone

    def describe(self) -> dict:
        """What a result records about the data."""
        return {"dataset": self.name, "layout": self.layout, "data_root": str(self.root), "split": self.split,
                "num_images": len(self), "depth_units_per_metre": self.units_per_metre,
                "border": {"nyu": list(NYU_CONTENT_BOX)}.get(self.border) if self.border else None}


# ----------------------------------------------------------------------------- layouts

def _csv_file(root: Path, split: str) -> Path | None:
    return next((c for c in (root / f"nyu2_{split}.csv", root / "data" / f"nyu2_{split}.csv") if c.is_file()), None)


def _listed(entry: str, csv_path: Path, root: Path, split: str, line: int) -> Path:
    """A CSV entry (``data/nyu2_test/x.png``, ``nyu2_test/x.png`` or ``x.png`` in ``nyu2_test/``) → its file."""
    relative = Path(entry.strip())
    if relative.is_absolute():
        if relative.is_file():
            return relative
    else:
        bases = (csv_path.parent, csv_path.parent / f"nyu2_{split}", root, root / f"nyu2_{split}", root.parent)
        for skip in range(len(relative.parts)):
            tail = Path(*relative.parts[skip:])
            for base in bases:
                if (base / tail).is_file():
                    return base / tail
    raise DatasetError(f"{csv_path}:{line}: listed file {entry.strip()} not found (looked beside the CSV and "
                       f"under {root})")


def densedepth_files(root: Path, split: str, csv_path: Path) -> list[DepthFiles]:
    """Pairs of DenseDepth's ``nyu2_<split>.csv``; ids are the image stems without ``_colors``
    (train: ``<scene>/<n>``)."""
    files = []
    rows = csv.reader(read_text(csv_path, "DenseDepth CSV").splitlines())
    for line, row in enumerate(rows, start=1):
        row = [c for c in row if c.strip()]
        if not row:
            continue
        if len(row) != 2:
            raise DatasetError(f"{csv_path}:{line}: expected 'image,depth', got {len(row)} fields")
        image, depth = _listed(row[0], csv_path, root, split, line), _listed(row[1], csv_path, root, split, line)
        stem = re.sub(r"_colou?rs?$", "", Path(row[0].strip()).stem)
        files.append(DepthFiles(f"{Path(row[0].strip()).parent.name}/{stem}" if split == "train" else stem,
                                image, depth))
    if not files:
        raise DatasetError(f"{csv_path}: lists no image,depth pairs")
    return files


def bts_files(root: Path, split: str) -> list[DepthFiles]:
    """Pairs of BTS's NYU sync layout (see the module); ids are ``<scene>/<number>`` (or ``<number>``)."""
    folder = root / "official_splits" / split
    if not folder.is_dir():
        folder = root / "sync" if split == "train" and (root / "sync").is_dir() else root
    listing = root / f"nyudepthv2_{split}_files_with_gt.txt"
    if listing.is_file():
        files = []
        for line, text in enumerate(read_lines(listing, "BTS filenames file"), start=1):
            parts = text.split()
            if len(parts) < 2 or parts[1] == "None":  # BTS lists some train frames without depth
                continue
            image, depth = folder / parts[0].lstrip("/"), folder / parts[1].lstrip("/")
            for path in (image, depth):
                if not path.is_file():
                    raise DatasetError(f"{listing}:{line}: listed file {path} not found")
            files.append(DepthFiles(str(Path(parts[0].lstrip("/")).with_suffix("")).replace("rgb_", ""), image,
                                    depth))
        if not files:
            raise DatasetError(f"{listing}: lists no rgb/depth pairs")
        return files
    images = sorted(p for p in folder.rglob("rgb_*") if p.is_file() and _RGB_NAME.match(p.name))
    if not images:
        raise DatasetError(f"{folder}: no nyu2_{split}.csv (DenseDepth layout) and no rgb_*.jpg files (BTS sync "
                           f"layout) in this folder or below")
    files = []
    for image in images:
        number = _RGB_NAME.match(image.name).group(1)
        name = f"sync_depth_{number}.png"
        candidates = [image.parent / name] + ([image.parent.parent / "depth" / name]
                                              if image.parent.name == "rgb" else [])
        depth = next((c for c in candidates if c.is_file()), None)
        if depth is None:
            raise DatasetError(f"{image}: no matching {name} beside it"
                               + (" or in ../depth/" if image.parent.name == "rgb" else ""))
        scene = image.parent.relative_to(folder)
        scene = scene.parent if scene.name == "rgb" else scene
        files.append(DepthFiles(number if scene == Path(".") else f"{scene.as_posix()}/{number}", image, depth))
    return files


def folder_files(root: Path, split: str) -> list[DepthFiles]:
    """Pairs of a generic ``images/`` + ``depth/`` folder (see the module)."""
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    image_dir, depth_dir = root / "images", root / "depth"
    if split != "all" and (image_dir / split).is_dir():
        image_dir, depth_dir = image_dir / split, depth_dir / split
    if not image_dir.is_dir():
        raise DatasetError(f"{root}: no images/ folder (a depth folder holds images/ and depth/)")
    images = {p.stem: p for p in sorted(image_dir.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
    if not images:
        raise DatasetError(f"{image_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    ids = sorted(images)
    if split != "all" and image_dir == root / "images":
        listing = root / "splits" / f"{split}.txt"
        if not listing.is_file():
            raise DatasetError(f"{root}: no images/{split}/ folder and no splits/{split}.txt; use --split all "
                               f"for every image")
        ids = read_lines(listing, "split list")
        unknown = [i for i in ids if i not in images]
        if unknown:
            raise DatasetError(f"{listing}: {len(unknown)} ids have no image in {image_dir}: {', '.join(unknown[:5])}")
    missing = [i for i in ids if not (depth_dir / f"{i}.png").is_file()]
    if missing:
        raise DatasetError(f"{depth_dir}: {len(missing)} images have no depth <id>.png: {', '.join(missing[:5])}")
    return [DepthFiles(i, images[i], depth_dir / f"{i}.png") for i in ids]


def open_depth_dataset(kind: str, root: str | Path, split: str, *, depth_scale: float = 1000.0,
                       fileset: str | Path | None = None) -> DepthDataset:
    """RGB-D pairs of ``kind`` (``nyu``: DenseDepth CSV or BTS sync, told apart by the CSV; ``folder``) at
    ``root``/``split``, restricted to the ids of ``fileset`` (a text file) when given. ``depth_scale``:
    stored units per metre of a folder's depth PNGs (NYU's are millimetres)."""
    root = Path(root)
    if kind not in DEPTH_DATASETS:
        raise DatasetError(f"--dataset {kind}: depth datasets are {', '.join(DEPTH_DATASETS)}")
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    if not any(root.iterdir()):
        raise DatasetError(f"{root}: dataset folder is empty")
    if kind == "folder":
        dataset = DepthDataset("folder", "folder", root, split, folder_files(root, split), depth_scale)
    elif (csv_path := _csv_file(root, split)) is not None:
        dataset = DepthDataset("nyu", "densedepth", root, split, densedepth_files(root, split, csv_path), 1000.0,
                               border="nyu", allow_8bit=split == "train")
    elif others := sorted(p.name for p in [*root.glob("nyu2_*.csv"), *root.glob("data/nyu2_*.csv")]):
        raise DatasetError(f"{root}: no nyu2_{split}.csv for --split {split} (this DenseDepth folder has "
                           f"{', '.join(others)})")
    else:
        dataset = DepthDataset("nyu", "bts", root, split, bts_files(root, split), 1000.0, border="nyu")
    if fileset is not None:
        from hummingbird.datasets.filesets import is_named

        if is_named(str(fileset)):
            raise DatasetError(f"--fileset {fileset}: the named file sets are segmentation id lists; give a text "
                               f"file of {kind} ids")
        dataset = dataset.restricted(fileset)
    return dataset



class DepthExamples:
    """RGB-D examples held in memory: images (see :func:`hummingbird.datasets.examples.as_rgb`) and depth maps
    ``(H, W)`` in metres (numpy or torch; NaN, infinite and values ≤ 0 are invalid). Reads like a
    :class:`DepthDataset`; ``border="nyu"`` treats 640×480 examples as NYU frames."""

    name = "memory"

    def __init__(self, images: Sequence, depths: Sequence, border: str | None = None,
                 ids: Sequence[str] | None = None, first_id: int = 0):
        from hummingbird.datasets.examples import as_rgb
        from hummingbird.errors import ConfigError

        images, depths = list(images), list(depths)
        if len(images) != len(depths):
            raise ConfigError(f"{len(images)} images but {len(depths)} depth maps; give one depth map per image")
        if not images:
            raise ConfigError("no examples given")
        self.images = [as_rgb(im, f"image {i}") for i, im in enumerate(images)]
        self.depths, self.valid = [], []
        for i, (image, depth) in enumerate(zip(self.images, depths)):
            values = depth.detach().cpu().numpy() if hasattr(depth, "detach") else np.asarray(depth)
            if values.ndim != 2 or not np.issubdtype(values.dtype, np.number):
                raise ConfigError(f"depth {i}: expected an (H, W) map of depths in metres, got {values.shape} "
                                  f"{values.dtype}")
            if values.shape != (image.height, image.width):
                raise ConfigError(f"depth {i}: {values.shape[1]}x{values.shape[0]} but image {i} is "
                                  f"{image.width}x{image.height}; they must be pixel-aligned")
            valid = valid_depth(values.astype(np.float64))
            if not valid.any():
                raise ConfigError(f"depth {i}: no valid depth pixel (every value is 0, negative or NaN)")
            self.depths.append(np.where(valid, values, 0).astype(np.float32))
            self.valid.append(valid)
        self.files = [Path(im).resolve() if isinstance(im, (str, Path)) else None for im in images]
        self.ids = list(ids) if ids is not None else [
            f.stem if f is not None else f"example_{first_id + i:05d}" for i, f in enumerate(self.files)]
        if len(set(self.ids)) != len(self.ids):
            raise ConfigError("example ids must be distinct")
        self.border, self.root, self.split = border, Path("."), "memory"

    def __len__(self) -> int:
        return len(self.images)

    def read_depth(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.depths[index], self.valid[index]

    def __getitem__(self, index: int) -> DepthSample:
        return DepthSample(self.ids[index], self.images[index], self.depths[index], self.valid[index],
                           frame_box(*self.depths[index].shape, self.border))

    def describe(self) -> dict:
        return {"dataset": self.name, "layout": "examples", "data_root": None, "split": self.split,
                "num_images": len(self), "border": {"nyu": list(NYU_CONTENT_BOX)}.get(self.border)}
