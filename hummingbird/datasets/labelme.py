"""A folder of labelme JSON files (``--dataset labelme --data-root DIR``): polygons, rectangles, circles, lines
and points drawn on images, one JSON per image.

Each JSON names its image (``imagePath``, relative to the JSON; else an image of the same stem beside it) and
its shapes; shapes are filled in file order (later ones on top); pixels no shape covers are unlabelled (255).
Classes: ``classes.txt`` in the folder (one name per line), else the shapes' labels in order of first
appearance over the files sorted by name. Split ``all`` takes every JSON of the folder; another split names a
subfolder, or a list ``<split>.txt`` of ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hummingbird.catalog import IMAGE_SUFFIXES
from hummingbird.datasets.base import IGNORE_INDEX, PairedTransform, SampleFiles, SegmentationDataset, read_class_names
from hummingbird.errors import DatasetError


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable labelme JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise DatasetError(f"{path}: not a labelme JSON (no \"shapes\" list)")
    return data


def _image_of(path: Path, data: dict) -> Path:
    named = data.get("imagePath")
    candidates = [path.parent / named, path.parent / Path(str(named).replace("\\", "/")).name] if named else []
    candidates += [path.with_suffix(s) for s in IMAGE_SUFFIXES]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise DatasetError(f"{path}: its image {named or path.stem + '.*'} is not beside it")
    return found


def render_shapes(data: dict, size: tuple[int, int], lookup: dict[str, int], source: Path) -> np.ndarray:
    """The shapes of a labelme record as an ``(H, W)`` uint8 mask for an image of ``size = (width, height)``."""
    canvas = Image.new("L", size, IGNORE_INDEX)
    draw = ImageDraw.Draw(canvas)
    for number, shape in enumerate(data["shapes"]):
        label, kind = shape.get("label"), shape.get("shape_type") or "polygon"
        points = [tuple(map(float, p)) for p in shape.get("points") or []]
        if label not in lookup:
            raise DatasetError(f"{source}: shape {number} has label {label!r}, not in the class list")
        if not points:
            continue
        value = lookup[label]
        if kind == "rectangle" and len(points) == 2:
            (x0, y0), (x1, y1) = points
            draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=value)
        elif kind == "circle" and len(points) == 2:
            (cx, cy), (px, py) = points
            r = ((px - cx) ** 2 + (py - cy) ** 2) ** 0.5
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=value)
        elif kind in ("line", "linestrip"):
            draw.line(points, fill=value, width=3)
        elif kind == "point":
            for x, y in points:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=value)
        elif len(points) >= 3:
            draw.polygon(points, fill=value)
    return np.array(canvas)


class LabelmeSegmentation(SegmentationDataset):
    """A folder of labelme JSON files and their images (see the module)."""

    name = "labelme"

    def __init__(self, root: str | Path, split: str = "all", transform: PairedTransform | None = None, seed: int = 0,
                 num_classes: int | None = None):
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: labelme folder does not exist")
        folder = root / split if split not in ("all", "train") and (root / split).is_dir() else root
        files = sorted(folder.glob("*.json"))
        if split not in ("all", "train") and folder == root:
            listing = root / f"{split}.txt"
            if not listing.is_file():
                raise DatasetError(f"{root}: no subfolder {split}/ and no list {split}.txt for split {split!r}")
            wanted = listing.read_text().split()
            files = [root / f"{i}.json" for i in wanted]
        if not files:
            raise DatasetError(f"{folder}: no labelme .json files")
        self._records = [_read(f) for f in files]
        names_file = root / "classes.txt"
        if names_file.is_file():
            names = read_class_names(names_file, num_classes)
        else:
            names = list(dict.fromkeys(str(s.get("label")) for d in self._records for s in d["shapes"]))
            if not names:
                raise DatasetError(f"{folder}: the labelme files hold no labelled shape")
        self._lookup = {n: i for i, n in enumerate(names)}
        self._files = files
        samples = [SampleFiles(f.stem, _image_of(f, d), None) for f, d in zip(files, self._records)]
        super().__init__(root, split, samples, names, transform, seed)
        self._index_of = {s.id: i for i, s in enumerate(samples)}

    def read_mask(self, index: int) -> np.ndarray:
        i = self._index_of[self.samples[index].id]
        width, height = self.read_image(index).size
        return render_shapes(self._records[i], (width, height), self._lookup, self._files[i]).astype(np.int64)
