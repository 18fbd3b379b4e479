"""COCO-Stuff 164k: COCO 2017 images, the official stuff json annotations, and their pixel maps converted
to the 15 stuff supercategories :class:`hummingbird.datasets.base.COCOSegmentation` uses (things, ``other``
and unlabelled pixels → 255), written where that loader keeps its rendered masks so it reads them as they are."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

from hummingbird.datasets.base import IGNORE_INDEX
from hummingbird.datasets.coco import coco_classes
from hummingbird.datasets.prepare.unpack import extract
from hummingbird.errors import DatasetError

SPLITS = ("train", "val")


def build(stage: Path, archives: dict[str, Path], progress: bool = True) -> Path:
    """Extract into ``stage/coco`` and convert the pixel maps; returns that folder."""
    coco = stage / "coco"
    for split in SPLITS:
        extract(archives[f"{split}2017.zip"], coco, progress=progress)
        if not (coco / f"{split}2017").is_dir():
            raise DatasetError(f"{archives[f'{split}2017.zip']}: no {split}2017/ folder inside")
    stuff = archives["stuff_annotations_trainval2017.zip"]
    extract(stuff, coco, progress=progress,
            keep=lambda n: n.startswith("annotations/stuff_") and n.endswith((".json", "_pixelmaps.zip")))
    for split in SPLITS:
        for part in (f"stuff_{split}2017.json", f"stuff_{split}2017_pixelmaps.zip"):
            if not (coco / "annotations" / part).is_file():
                raise DatasetError(f"{stuff}: no annotations/{part} inside; not the COCO-Stuff annotation archive")
    table = class_table(coco / "annotations" / "stuff_val2017.json")
    for split in SPLITS:
        pixelmaps = coco / "annotations" / f"stuff_{split}2017_pixelmaps.zip"
        convert_pixelmaps(pixelmaps, coco / "hummingbird_masks" / f"stuff_{split}2017", table, progress)
        pixelmaps.unlink()
    return coco


def class_table(annotations: Path) -> np.ndarray:
    """``(256,)`` uint8: COCO-Stuff category id → stuff supercategory index as the loader numbers them,
    255 for things (0), ``other`` (183) and unknown ids."""
    with open(annotations) as handle:
        categories = json.load(handle)["categories"]
    _, lookup = coco_classes(SimpleNamespace(cats={c["id"]: c for c in categories}), "stuff")
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for category_id, index in lookup.items():
        table[category_id] = index
    return table


def convert_pixelmaps(pixelmaps: Path, out: Path, table: np.ndarray, progress: bool = True) -> int:
    """Write ``out/<image id>.png`` (class indices) for every ``<12-digit id>.png`` pixel map in the zip."""
    from tqdm.auto import tqdm

    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(pixelmaps) as zf:
        members = [m for m in zf.namelist() if m.endswith(".png")]
        for member in tqdm(members, desc=f"convert {pixelmaps.name}", unit="img", disable=not progress):
            with zf.open(member) as handle, Image.open(handle) as img:
                raw = np.asarray(img)
            if raw.ndim != 2:
                raise DatasetError(f"{pixelmaps}: {member} is not a single-channel map of category ids")
            Image.fromarray(table[raw]).save(out / f"{int(Path(member).stem)}.png")
    return len(members)
