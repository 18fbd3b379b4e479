"""Cityscapes fine annotations, 19 evaluation classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hummingbird.datasets.base import IGNORE_INDEX, PairedTransform, SampleFiles, SegmentationDataset, require_files
from hummingbird.errors import DatasetError

# Cityscapes label id → train id (19 classes); every other id is ignored.
_CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                         26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                      "bicycle")


class CityscapesSegmentation(SegmentationDataset):
    """Cityscapes fine annotations, 19 evaluation classes (``gtFine_labelIds`` mapped to train ids,
    everything else 255). Layout: ``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png`` and
    ``gtFine/{train,val}/<city>/*_gtFine_labelIds.png``."""

    name = "cityscapes"

    def __init__(self, root: str | Path, split: str = "train", transform: PairedTransform | None = None,
                 seed: int = 0):
        root = Path(root)
        split = {"training": "train", "validation": "val"}.get(split, split)
        image_dir = root / "leftImg8bit" / split
        if not image_dir.is_dir():
            raise DatasetError(f"{root}: no leftImg8bit/{split}/ folder; see data/README.md")
        samples = []
        for image in sorted(image_dir.glob("*/*_leftImg8bit.png")):
            stem = image.name[: -len("_leftImg8bit.png")]
            samples.append(SampleFiles(stem, image, root / "gtFine" / split / image.parent.name
                                       / f"{stem}_gtFine_labelIds.png"))
        require_files(samples, root)
        super().__init__(root, split, samples, CITYSCAPES_CLASSES, transform, seed)
        self._table = np.full(256, IGNORE_INDEX, dtype=np.int64)
        for label_id, train_id in _CITYSCAPES_TRAIN_IDS.items():
            self._table[label_id] = train_id

    def decode_mask(self, raw: np.ndarray) -> np.ndarray:
        return self._table[raw.clip(0, 255)]
