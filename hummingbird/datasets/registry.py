"""The dataset registry: every dataset layout by name, and :func:`load_dataset` that opens one."""

from __future__ import annotations

from pathlib import Path

from hummingbird.datasets.ade20k import ADE20KSegmentation
from hummingbird.datasets.base import PairedTransform, SegmentationDataset, read_id_list
from hummingbird.datasets.cityscapes import CityscapesSegmentation
from hummingbird.datasets.coco import COCOSegmentation
from hummingbird.datasets.cocojson import COCOJsonSegmentation
from hummingbird.datasets.folder import FolderSegmentation
from hummingbird.datasets.labelme import LabelmeSegmentation
from hummingbird.datasets.voc import VOCSegmentation
from hummingbird.errors import DatasetError


def _coco(variant: str):
    def make(root, split, transform=None, seed=0, **kwargs):
        return COCOSegmentation(root, split, transform, seed, variant=variant, **kwargs)

    return make


def load_dataset(kind: str, root: str | Path, split: str, transform: PairedTransform | None = None,
                 seed: int = 0, fileset: str | Path | None = None, **kwargs) -> SegmentationDataset:
    """Open a dataset by kind (``voc``, ``ade20k``, ``folder``, ...), optionally restricted to the ids of a
    file set: a text file of ids (one per line) or a shipped name such as ``voc:1/128:42``
    (:mod:`hummingbird.datasets.filesets`)."""
    if kind not in DATASETS:
        raise DatasetError(f"unknown dataset kind {kind!r}; use one of {', '.join(DATASETS)}")
    dataset = DATASETS[kind](root, split, transform=transform, seed=seed, **kwargs)
    if fileset is not None:
        from hummingbird.datasets.filesets import resolve_fileset

        dataset = dataset.subset(read_id_list(resolve_fileset(fileset)), source=str(fileset))
    return dataset


DATASETS = {"voc": VOCSegmentation, "ade20k": ADE20KSegmentation, "folder": FolderSegmentation,
            "coco_things": _coco("things"), "coco_stuff": _coco("stuff"), "cityscapes": CityscapesSegmentation,
            "coco-json": COCOJsonSegmentation, "labelme": LabelmeSegmentation}
DATASET_KINDS = tuple(DATASETS)
