"""COCO-Things and COCO-Stuff semantic segmentation from COCO 2017 json annotations (pycocotools)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from hummingbird.datasets.base import IGNORE_INDEX, PairedTransform, SampleFiles, SegmentationDataset, require_files
from hummingbird.errors import DatasetError


class COCOSegmentation(SegmentationDataset):
    """COCO-Things or COCO-Stuff semantic segmentation from COCO 2017 json annotations (pycocotools).

    * ``things``: the 80 thing categories merged into their 12 supercategories, plus ``background``
      (class 0) where no thing is annotated (13 classes);
    * ``stuff``: the 91 stuff categories of ``stuff_{split}2017.json`` merged into their 15
      supercategories; thing pixels and the ``other`` category are ignored (255).

    Masks are rendered once into ``cache_dir`` (default ``<root>/hummingbird_masks``) as index PNGs and
    read from there afterwards. Layout: ``<root>/{train,val}2017/`` or ``<root>/images/{train,val}2017/``
    and ``<root>/annotations/{instances,stuff}_{train,val}2017.json``.
    """

    name = "coco"
    _ANNOTATIONS = {"things": "instances", "stuff": "stuff"}

    def __init__(self, root: str | Path, split: str = "train", transform: PairedTransform | None = None,
                 seed: int = 0, variant: str = "things", cache_dir: str | Path | None = None, progress: bool = True):
        root, split = Path(root), {"training": "train", "validation": "val"}.get(split, split)
        if variant not in self._ANNOTATIONS:
            raise DatasetError(f"unknown COCO variant {variant!r}; use things or stuff")
        annotations = root / "annotations" / f"{self._ANNOTATIONS[variant]}_{split}2017.json"
        if not annotations.is_file():
            raise DatasetError(f"{annotations}: COCO annotation file not found; see data/README.md")
        image_dir = next((d for d in (root / f"{split}2017", root / "images" / f"{split}2017") if d.is_dir()), None)
        if image_dir is None:
            raise DatasetError(f"{root}: no {split}2017/ or images/{split}2017/ image folder")
        mask_dir = Path(cache_dir or root / "hummingbird_masks") / f"{variant}_{split}2017"
        self.name = f"coco_{variant}"
        from pycocotools.coco import COCO

        with warnings.catch_warnings(), _quiet():
            coco = COCO(str(annotations))
        class_names, lookup = coco_classes(coco, variant)
        image_ids = sorted(coco.getImgIds())
        samples = [SampleFiles(str(i), image_dir / coco.imgs[i]["file_name"], mask_dir / f"{i}.png") for i in image_ids]
        _render_coco_masks(coco, image_ids, mask_dir, lookup, background=0 if variant == "things" else IGNORE_INDEX,
                           progress=progress)
        require_files(samples, root)
        super().__init__(root, split, samples, class_names, transform, seed)


def _quiet():
    import contextlib
    import io

    return contextlib.redirect_stdout(io.StringIO())


def coco_classes(coco, variant: str) -> tuple[list[str], dict[int, int]]:
    """Class names and category id → class index (supercategories in order of first appearance)."""
    cats = [coco.cats[c] for c in sorted(coco.cats)]
    if variant == "stuff":
        cats = [c for c in cats if c["name"] != "other"]
    supers: list[str] = []
    for c in cats:
        if c["supercategory"] not in supers:
            supers.append(c["supercategory"])
    names = (["background"] if variant == "things" else []) + supers
    shift = 1 if variant == "things" else 0
    return names, {c["id"]: supers.index(c["supercategory"]) + shift for c in cats}


def _render_coco_masks(coco, image_ids: list[int], mask_dir: Path, lookup: dict[int, int], background: int,
                       progress: bool) -> None:
    """Write ``<image id>.png`` index masks that are not in ``mask_dir`` yet (atomic, resumable)."""
    from tqdm.auto import tqdm

    from hummingbird.files.atomic import atomic_path, make_folder

    todo = [i for i in image_ids if not (mask_dir / f"{i}.png").is_file()]
    if not todo:
        return
    make_folder(mask_dir)
    for image_id in tqdm(todo, desc=f"render masks → {mask_dir}", disable=not progress, unit="img"):
        info = coco.imgs[image_id]
        mask = np.full((info["height"], info["width"]), background, dtype=np.uint8)
        anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=None)), key=lambda a: -a["area"])
        for ann in anns:  # larger first, so smaller objects stay visible on top
            pixels = coco.annToMask(ann).astype(bool)
            mask[pixels] = lookup.get(ann["category_id"], IGNORE_INDEX)
        with atomic_path(mask_dir / f"{image_id}.png") as tmp:
            Image.fromarray(mask).save(tmp, format="PNG")
