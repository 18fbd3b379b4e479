"""Scan a dataset for every problem at once (without building anything) and count class pixels."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm.auto import tqdm

from hummingbird.datasets.base import IGNORE_INDEX
from hummingbird.datasets.folder import FolderSegmentation
from hummingbird.datasets.imageio import is_high_bit_depth, stored_image
from hummingbird.datasets.registry import load_dataset
from hummingbird.errors import DatasetError


@dataclass
class DatasetReport:
    """What :func:`scan_dataset` found: problems (one line each, naming the file), class pixel counts."""

    root: str
    kind: str
    split: str
    images: int = 0
    problems: list[str] = field(default_factory=list)
    converted_images: list[str] = field(default_factory=list)
    scaled_images: list[str] = field(default_factory=list)  # 16-bit / 32-bit / float pixels scaled to 8 bits
    rotated_images: list[str] = field(default_factory=list)  # EXIF orientation applied: read upright
    class_pixels: dict[str, int] = field(default_factory=dict)
    ignored_pixels: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return dict(asdict(self), ok=self.ok)

    def format(self) -> str:
        lines = [f"{self.kind} dataset {self.root} [{self.split}]: {self.images} images, {len(self.problems)} problems"]
        lines += [f"  problem: {p}" for p in self.problems]
        if self.converted_images:
            lines.append(f"  note: {len(self.converted_images)} images are not RGB and will be converted "
                         f"(e.g. {self.converted_images[0]})")
        if self.scaled_images:
            lines.append(f"  note: {len(self.scaled_images)} images have 16-bit, 32-bit or float pixels and will be "
                         f"scaled to 8 bits (e.g. {self.scaled_images[0]})")
        if self.rotated_images:
            lines.append(f"  note: {len(self.rotated_images)} images carry an EXIF rotation and are read upright, "
                         f"as viewers show them; their masks must be upright too (e.g. {self.rotated_images[0]})")
        total = sum(self.class_pixels.values())
        if total:
            lines.append("  class pixel frequencies:")
            width = max(len(n) for n in self.class_pixels)
            for name, count in self.class_pixels.items():
                lines.append(f"    {name:<{width}}  {100 * count / total:6.2f} %  ({count} px)")
            lines.append(f"    {'(ignored)':<{width}}  {self.ignored_pixels} px")
        return "\n".join(lines)


def scan_dataset(kind: str, root: str, split: str, num_classes: int | None = None, patch_size: int = 1,
                 progress: bool = True) -> DatasetReport:
    """Check every image and mask of a dataset split; never raises for problems in the data."""
    report = DatasetReport(str(root), kind, split)
    try:
        extra = ({"num_classes": num_classes, "require_masks": False} if kind == "folder"
                 else {"num_classes": num_classes} if kind in ("voc", "labelme") else {})
        dataset = load_dataset(kind, root, split, **extra)
    except DatasetError as exc:
        report.problems.append(str(exc))
        return report
    dataset.min_side = patch_size
    report.images = len(dataset)
    if isinstance(dataset, FolderSegmentation):
        report.problems += dataset.pairing_problems
    counts = np.zeros(dataset.num_classes, dtype=np.int64)
    for index in tqdm(range(len(dataset)), desc="check", disable=not progress, unit="img"):
        sample = dataset.samples[index]
        if sample.mask is None and isinstance(dataset, FolderSegmentation):
            continue  # reported by the pairing check (coco-json and labelme render their masks)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # conversions are listed in the report instead
            try:
                image, mask = dataset.load_sample(index)
            except DatasetError as exc:
                report.problems.append(str(exc))
                continue
        stored = stored_image(sample.image)
        if stored.mode != "RGB":
            report.converted_images.append(str(sample.image))
        if is_high_bit_depth(stored.mode):
            report.scaled_images.append(f"{sample.image} ({stored.mode})")
        if stored.turned:
            report.rotated_images.append(f"{sample.image} (EXIF orientation {stored.orientation})")
        valid = mask[mask != IGNORE_INDEX]
        counts += np.bincount(valid.ravel(), minlength=dataset.num_classes)[: dataset.num_classes]
        report.ignored_pixels += int(mask.size - valid.size)
    report.class_pixels = {name: int(c) for name, c in zip(dataset.class_names, counts)}
    return report
