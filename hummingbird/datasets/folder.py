"""A user's own folder: images/ + masks/, optional classes.txt and split lists."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from hummingbird.catalog import IMAGE_SUFFIXES
from hummingbird.datasets.base import (
    IGNORE_INDEX,
    PairedTransform,
    SampleFiles,
    SegmentationDataset,
    first_existing,
    read_class_names,
    read_id_list,
)
from hummingbird.errors import DatasetError


class FolderSegmentation(SegmentationDataset):
    """A user's folder: ``images/`` and ``masks/`` (PNG of class indices, same stem as the image,
    255 ignored), optional ``classes.txt`` (one name per line, line i is class i), optional split
    lists ``splits/<split>.txt`` or ``ImageSets/Segmentation/<split>.txt``, or split subfolders
    ``images/<split>/`` and ``masks/<split>/``. Split ``all`` takes every image."""

    name = "folder"

    def __init__(self, root: str | Path, split: str = "all", transform: PairedTransform | None = None,
                 seed: int = 0, num_classes: int | None = None, require_masks: bool = True):
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: dataset folder does not exist")
        image_dir, mask_dir = root / "images", root / "masks"
        if split != "all" and (image_dir / split).is_dir():
            image_dir, mask_dir = image_dir / split, mask_dir / split
        if not any(root.iterdir()):
            raise DatasetError(f"{root}: dataset folder is empty")
        if not image_dir.is_dir():
            raise DatasetError(f"{root}: no images/ folder (expected images/ and masks/; see data/README.md)")
        images = {p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
        if not images:
            raise DatasetError(f"{image_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
        ids = sorted(images)
        if split != "all" and image_dir == root / "images":
            ids_file = first_existing(root, [f"splits/{split}.txt", f"ImageSets/Segmentation/{split}.txt",
                                              f"ImageSets/{split}.txt"])
            if ids_file is None:
                raise DatasetError(f"{root}: no list for split {split!r} (splits/{split}.txt, "
                                   f"ImageSets/Segmentation/{split}.txt) and no images/{split}/ folder")
            ids = read_id_list(ids_file)
            unknown = [i for i in ids if i not in images]
            if unknown:
                raise DatasetError(f"{ids_file}: {len(unknown)} ids have no image in {image_dir}: "
                                   f"{', '.join(unknown[:5])}")
        samples = [SampleFiles(i, images[i], (mask_dir / f"{i}.png") if (mask_dir / f"{i}.png").is_file() else None)
                   for i in ids]
        self.pairing_problems = _pairing_problems(samples, images, image_dir, mask_dir)
        if require_masks and self.pairing_problems:
            raise DatasetError(self.pairing_problems[0])
        class_names = _folder_class_names(root, samples, num_classes)
        super().__init__(root, split, samples, class_names, transform, seed)


def _pairing_problems(samples: Sequence[SampleFiles], images: dict[str, Path], image_dir: Path,
                      mask_dir: Path) -> list[str]:
    """Messages for images without a mask and for masks without an image (first few named)."""
    def listing(names: list[str]) -> str:
        return ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")

    problems = []
    without = [s.image.name for s in samples if s.mask is None]
    if without:
        problems.append(f"{mask_dir}: {len(without)} images have no mask <id>.png: {listing(without)}")
    orphans = sorted(p.name for p in mask_dir.glob("*.png") if p.stem not in images) if mask_dir.is_dir() else []
    if orphans:
        problems.append(f"{mask_dir}: {len(orphans)} masks have no image in {image_dir}: {listing(orphans)}")
    return problems


def _folder_class_names(root: Path, samples: Sequence[SampleFiles], num_classes: int | None) -> list[str]:
    names_file = root / "classes.txt"
    if names_file.is_file():
        return read_class_names(names_file, num_classes)
    if num_classes is None:  # infer from the masks: the largest index that is not ignored
        largest = 0
        for s in samples:
            if s.mask is not None:
                try:
                    with Image.open(s.mask) as img:
                        values = np.unique(np.array(img))
                except (OSError, SyntaxError, ValueError) as exc:
                    raise DatasetError(f"{s.mask}: cannot read mask, unreadable or truncated ({exc})") from exc
                values = values[values != IGNORE_INDEX]
                largest = max(largest, int(values.max()) if values.size else 0)
        num_classes = largest + 1
    return [f"class_{i}" for i in range(num_classes)]
