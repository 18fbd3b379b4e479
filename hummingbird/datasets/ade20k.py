"""ADE20K SceneParsing (ADEChallengeData2016) with its three conventions for the raw label 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hummingbird.datasets.base import IGNORE_INDEX, PairedTransform, SampleFiles, SegmentationDataset, require_files
from hummingbird.datasets.classes import ADE20K_CLASSES
from hummingbird.errors import DatasetError


class ADE20KSegmentation(SegmentationDataset):
    """ADE20K SceneParsing (ADEChallengeData2016), raw labels 0 ("other") .. 150.

    ``other`` says what raw 0 becomes:

    * ``"ignore"`` (default): 150 classes; 0 becomes 255 and labels shift down by one, as in
      mmsegmentation (``reduce_zero_label``);
    * ``"class"``: 151 classes, raw labels, "other" is class 0 (open-hummingbird-eval's memory);
    * ``"ignore-unshifted"``: 151 classes, raw labels, "other" pixels ignored (open-hummingbird-eval's
      evaluation: class 0 never occurs in the ground truth but is one of the classes its mean runs over).
    """

    name = "ade20k"
    _SPLITS = {"train": "training", "training": "training", "val": "validation", "validation": "validation"}
    OTHER = ("ignore", "class", "ignore-unshifted")

    def __init__(self, root: str | Path, split: str = "training", transform: PairedTransform | None = None,
                 seed: int = 0, other: str = "ignore"):
        ade = _find_ade_root(Path(root))
        if split not in self._SPLITS:
            raise DatasetError(f"{ade}: unknown ADE20K split {split!r}; use training or validation")
        if other not in self.OTHER:
            raise DatasetError(f"ADE20K: other={other!r}; use one of {', '.join(self.OTHER)}")
        folder = self._SPLITS[split]
        samples = [SampleFiles(p.stem, p, ade / "annotations" / folder / f"{p.stem}.png")
                   for p in sorted((ade / "images" / folder).glob("*.jpg"))]
        require_files(samples, ade)
        self.other = other
        classes = ADE20K_CLASSES if other == "ignore" else ("other", *ADE20K_CLASSES)
        super().__init__(ade, folder, samples, classes, transform, seed)

    def decode_mask(self, raw: np.ndarray) -> np.ndarray:
        if self.other == "class":
            return raw
        if self.other == "ignore-unshifted":
            return np.where(raw == 0, IGNORE_INDEX, raw)
        return np.where(raw == 0, IGNORE_INDEX, raw - 1)


def _find_ade_root(root: Path) -> Path:
    for candidate in (root, root / "ADEChallengeData2016"):
        if (candidate / "images").is_dir() and (candidate / "annotations").is_dir():
            return candidate
    raise DatasetError(f"{root}: not an ADEChallengeData2016 folder (no images/ and annotations/); "
                       f"see data/README.md")
