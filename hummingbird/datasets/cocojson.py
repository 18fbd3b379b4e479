"""A COCO JSON a practitioner already has (instances or stuff: polygons, RLE or uncompressed RLE), over a folder
of images: ``--dataset coco-json --annotations FILE.json --images DIR``.

Each category is a class, in the order of the category ids (their names are the class names); each image's
mask is rendered from its annotations through pycocotools — larger regions first, so smaller ones stay on
top — and pixels no annotation covers are unlabelled (255), as in a partly labelled photo. The split is the
annotation file (as COCO's ``instances_train2017.json`` is its train split); a relative one is looked up in
the image folder. Images are found by ``file_name`` in the image folder (its base name when the full relative
path is not there).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hummingbird.datasets.base import IGNORE_INDEX, PairedTransform, SampleFiles, SegmentationDataset
from hummingbird.errors import DatasetError


def _load(path: Path):
    from pycocotools.coco import COCO

    if not path.is_file():
        raise DatasetError(f"{path}: COCO annotation file not found")
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(path))
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        raise DatasetError(f"{path}: not a COCO annotation JSON ({type(exc).__name__}: {exc})") from None
    if not coco.cats:
        raise DatasetError(f"{path}: lists no categories")
    return coco


def read_coco_json(path: str | Path) -> tuple[list[str], dict[str, Callable[[], np.ndarray]]]:
    """``(class names, {file_name: render() → (H, W) uint8 mask})`` of a COCO JSON (255 where nothing is
    annotated)."""
    coco = _load(Path(path))
    cats = sorted(coco.cats)
    lookup = {c: i for i, c in enumerate(cats)}
    names = [str(coco.cats[c]["name"]) for c in cats]
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: category names repeat; each category must be a distinct class")
    if len(names) > IGNORE_INDEX:
        raise DatasetError(f"{path}: {len(names)} categories; masks hold at most {IGNORE_INDEX} classes")

    def renderer(image_id: int):
        def render() -> np.ndarray:
            info = coco.imgs[image_id]
            mask = np.full((info["height"], info["width"]), IGNORE_INDEX, dtype=np.uint8)
            anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=None)),
                          key=lambda a: -float(a.get("area") or 0))
            for ann in anns:
                if ann["category_id"] not in lookup:
                    raise DatasetError(f"{path}: annotation {ann.get('id')} names category {ann['category_id']}, "
                                       f"which is not listed")
                try:
                    pixels = coco.annToMask(ann).astype(bool)
                except Exception as exc:  # noqa: BLE001 - pycocotools raises many kinds on bad segmentations
                    raise DatasetError(f"{path}: annotation {ann.get('id')} of image {info.get('file_name')} has an "
                                       f"unreadable segmentation ({type(exc).__name__}: {exc})") from None
                if pixels.shape != mask.shape:
                    raise DatasetError(f"{path}: annotation {ann.get('id')} is {pixels.shape[1]}x{pixels.shape[0]}, "
                                       f"its image {mask.shape[1]}x{mask.shape[0]}")
                mask[pixels] = lookup[ann["category_id"]]
            return mask
        return render

    return names, {coco.imgs[i]["file_name"]: renderer(i) for i in sorted(coco.imgs)}


class COCOJsonSegmentation(SegmentationDataset):
    """Images of ``root`` labelled by the COCO JSON ``split`` (see the module); ``all`` or ``train`` mean
    ``root/annotations.json``."""

    name = "coco-json"

    def __init__(self, root: str | Path, split: str = "annotations.json", transform: PairedTransform | None = None,
                 seed: int = 0):
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: image folder does not exist")
        path = Path(split)
        if split in ("all", "train", "val"):
            path = root / "annotations.json"
        elif not path.is_file() and (root / path).is_file():
            path = root / path
        names, renders = read_coco_json(path)
        samples, self._renders = [], []
        for file_name, render in renders.items():
            image = root / file_name if (root / file_name).is_file() else root / Path(file_name).name
            if not image.is_file():
                raise DatasetError(f"{path}: image {file_name} is not in {root}")
            samples.append(SampleFiles(Path(file_name).stem, image, None))
            self._renders.append(render)
        if len({s.id for s in samples}) != len(samples):
            raise DatasetError(f"{path}: two images share a file name stem; ids must be distinct")
        super().__init__(root, str(path), samples, names, transform, seed)
        self._index_of = {s.id: i for i, s in enumerate(samples)}

    def read_mask(self, index: int) -> np.ndarray:
        return self._renders[self._index_of[self.samples[index].id]]().astype(np.int64)
