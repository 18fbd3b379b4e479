"""Pascal VOC 2012 + SBD → ``SegmentationClassAug/`` and ``trainaug.txt``, as mmsegmentation's
``tools/dataset_converters/voc_aug.py`` builds them (10,582 training ids on the full data)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from hummingbird.datasets.base import read_id_list
from hummingbird.datasets.prepare.archives import SBD_ARCHIVE
from hummingbird.datasets.prepare.unpack import extract
from hummingbird.errors import DatasetError

SBD_PREFIX = "benchmark_RELEASE/dataset/"


def build(stage: Path, archives: dict[str, Path], progress: bool = True) -> Path:
    """Extract the VOC tar and the needed parts of SBD into ``stage``, convert; returns ``stage/VOCdevkit``.
    Without SBD's archive among ``archives`` (``--no-sbd``) only VOC's own train and val are there."""
    tar = archives["VOCtrainval_11-May-2012.tar"]
    extract(tar, stage, progress=progress)
    voc = stage / "VOCdevkit" / "VOC2012"
    if not (voc / "JPEGImages").is_dir() or not (voc / "SegmentationClass").is_dir():
        raise DatasetError(f"{tar}: no VOCdevkit/VOC2012/JPEGImages and SegmentationClass inside; not the VOC 2012 "
                           f"trainval archive")
    if SBD_ARCHIVE not in archives:
        return stage / "VOCdevkit"
    sbd = stage / "sbd"

    def wanted(name: str) -> bool:  # class masks, id lists, and only the images VOC lacks (normally none)
        rest = name[len(SBD_PREFIX):] if name.startswith(SBD_PREFIX) else None
        return rest is not None and (rest.startswith("cls/") or rest in ("train.txt", "val.txt") or (
            rest.startswith("img/") and not (voc / "JPEGImages" / Path(rest).name).exists()))

    tgz = archives[SBD_ARCHIVE]
    extract(tgz, sbd, keep=wanted, progress=progress)
    dataset = sbd / SBD_PREFIX
    if not (dataset / "cls").is_dir():
        raise DatasetError(f"{tgz}: no {SBD_PREFIX}cls/ inside; not the SBD benchmark archive")
    for image in sorted((dataset / "img").glob("*.jpg")) if (dataset / "img").is_dir() else []:
        shutil.move(image, voc / "JPEGImages" / image.name)
    add_trainaug(voc, dataset, progress)
    shutil.rmtree(sbd)
    return stage / "VOCdevkit"


def trainaug_ids(voc_train: list[str], voc_val: list[str], sbd_train: list[str], sbd_val: list[str]) -> list[str]:
    """(VOC train ∪ SBD train ∪ SBD val) − VOC val, sorted."""
    return sorted((set(voc_train) | set(sbd_train) | set(sbd_val)) - set(voc_val))


def read_sbd_mask(path: Path) -> np.ndarray:
    """Class indices ``(H, W)`` uint8 of an SBD ``cls/<id>.mat`` (MATLAB struct ``GTcls.Segmentation``)."""
    from scipy.io import loadmat

    try:
        segmentation = loadmat(path, squeeze_me=True, struct_as_record=False)["GTcls"].Segmentation
    except (KeyError, AttributeError, ValueError, OSError) as exc:
        raise DatasetError(f"{path}: not an SBD class annotation (no GTcls.Segmentation: {exc})") from exc
    mask = np.asarray(segmentation)
    if mask.ndim != 2 or mask.size == 0 or mask.max() > 20:
        raise DatasetError(f"{path}: GTcls.Segmentation is not a 2-D map of VOC classes 0..20")
    return mask.astype(np.uint8)


def add_trainaug(voc: Path, sbd_dataset: Path, progress: bool = True) -> list[str]:
    """Write ``SegmentationClassAug/<id>.png`` (SBD masks; VOC's own masks where VOC has one) and
    ``ImageSets/SegmentationAug/trainaug.txt``; returns the trainaug ids."""
    from tqdm.auto import tqdm

    from hummingbird.datasets.palettes import voc_palette

    palette = voc_palette().flatten().tolist()
    out = voc / "SegmentationClassAug"
    out.mkdir(exist_ok=True)
    for mat in tqdm(sorted((sbd_dataset / "cls").glob("*.mat")), desc="SBD .mat → PNG", unit="img",
                    disable=not progress):
        image = Image.fromarray(read_sbd_mask(mat), mode="P")
        image.putpalette(palette)
        image.save(out / f"{mat.stem}.png")
    for png in sorted((voc / "SegmentationClass").glob("*.png")):
        shutil.copyfile(png, out / png.name)
    lists = voc / "ImageSets" / "Segmentation"
    ids = trainaug_ids(read_id_list(lists / "train.txt"), read_id_list(lists / "val.txt"),
                       read_id_list(sbd_dataset / "train.txt"), read_id_list(sbd_dataset / "val.txt"))
    missing = [i for i in ids if not (out / f"{i}.png").is_file()]
    if missing:
        raise DatasetError(f"{sbd_dataset}: {len(missing)} trainaug ids have no mask in SBD cls/ or VOC: "
                           f"{', '.join(missing[:5])}")
    (voc / "ImageSets" / "SegmentationAug").mkdir(parents=True, exist_ok=True)
    (voc / "ImageSets" / "SegmentationAug" / "trainaug.txt").write_text("\n".join(ids) + "\n")
    return ids
