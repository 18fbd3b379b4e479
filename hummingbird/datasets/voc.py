"""Pascal VOC 2012 segmentation, and a user's own classes in its folder layout."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hummingbird.datasets.base import (
    PairedTransform,
    SampleFiles,
    SegmentationDataset,
    first_existing,
    read_class_names,
    read_id_list,
    require_files,
)
from hummingbird.datasets.classes import VOC_CLASSES
from hummingbird.errors import DatasetError


class VOCSegmentation(SegmentationDataset):
    """Pascal VOC 2012 segmentation: splits ``train``, ``val``, ``trainval`` (SegmentationClass) and
    ``trainaug`` (SBD-augmented SegmentationClassAug); 21 classes, 255 on boundaries ignored.

    The same layout with a user's own classes: a ``classes.txt`` (one name per line, line i is class i)
    in the VOC folder or the data root, or ``num_classes`` (names ``class_0`` ...); VOC's 21 names
    otherwise. Mask values beyond the declared classes (other than 255) are an error."""

    name = "voc"

    def __init__(self, root: str | Path, split: str = "train", transform: PairedTransform | None = None,
                 seed: int = 0, num_classes: int | None = None):
        voc = _find_voc_root(Path(root))
        ids_file = first_existing(voc, _VOC_SPLIT_FILES.get(split, [f"ImageSets/Segmentation/{split}.txt"]))
        if ids_file is None:
            raise DatasetError(f"{voc}: no list for split {split!r} (looked for "
                               f"{', '.join(_VOC_SPLIT_FILES.get(split, [f'ImageSets/Segmentation/{split}.txt']))})")
        mask_dirs = ["SegmentationClassAug"] if split == "trainaug" else ["SegmentationClass", "SegmentationClassAug"]
        mask_dir = next((voc / d for d in mask_dirs if (voc / d).is_dir()), None)
        if mask_dir is None:
            raise DatasetError(f"{voc}: no mask folder ({' or '.join(mask_dirs)}) for split {split!r}")
        samples = [SampleFiles(i, voc / "JPEGImages" / f"{i}.jpg", mask_dir / f"{i}.png")
                   for i in read_id_list(ids_file)]
        require_files(samples, voc)
        super().__init__(voc, split, samples, _voc_class_names(voc, Path(root), num_classes), transform, seed)


def _voc_class_names(voc: Path, root: Path, num_classes: int | None) -> Sequence[str]:
    """VOC's 21 names, unless ``classes.txt`` (in the VOC folder or the data root) or ``num_classes``
    declares the dataset's own classes."""
    names_file = next((f for f in (voc / "classes.txt", root / "classes.txt") if f.is_file()), None)
    if names_file is not None:
        return read_class_names(names_file, num_classes)
    if num_classes is None or num_classes == len(VOC_CLASSES):
        return VOC_CLASSES
    return [f"class_{i}" for i in range(num_classes)]


_VOC_SPLIT_FILES = {
    "trainaug": ["ImageSets/SegmentationAug/trainaug.txt", "ImageSets/Segmentation/trainaug.txt",
                 "ImageSets/Segmentation/train_aug.txt", "ImageSets/SegmentationAug/train_aug.txt"],
}


def _find_voc_root(root: Path) -> Path:
    for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise DatasetError(f"{root}: not a Pascal VOC 2012 folder (no JPEGImages/ here, in VOC2012/ or in "
                       f"VOCdevkit/VOC2012/); see data/README.md")
