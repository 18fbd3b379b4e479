"""Segmentation datasets: Pascal VOC 2012, ADE20K, and a generic images/ + masks/ folder.

Every dataset yields ``{"image": (3, S, S) float, "mask": (S, S) int64, "view": (5,) int64, "index": int,
"id": str}`` after its paired transform (``view``: the source region shown, see ``transforms``); mask values are class indices in ``[0, num_classes)`` or
``IGNORE_INDEX`` (255).
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from hummingbird.catalog import DEFAULT_SPLITS, IMAGE_SUFFIXES  # noqa: F401 (re-exported)
from hummingbird.classes import ADE20K_CLASSES, VOC_CLASSES
from hummingbird.errors import DatasetError
from hummingbird.imageio import is_high_bit_depth, read_rgb_stored, stored_image
from hummingbird.notices import Once, warn
from hummingbird.textfiles import read_lines

IGNORE_INDEX = 255

PairedTransform = Callable[[Image.Image, np.ndarray, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class SampleFiles:
    """One annotated image on disk."""

    id: str
    image: Path
    mask: Path | None


class SegmentationDataset(torch.utils.data.Dataset):
    """A list of image/mask files, a class list, and a paired transform.

    ``seed`` and ``epoch`` fix each sample's augmentation: sample ``i`` of epoch ``e`` always gets
    the same random crop, whatever the batch size or number of loader workers.
    """

    name = "folder"

    def __init__(self, root: Path, split: str, samples: Sequence[SampleFiles], class_names: Sequence[str],
                 transform: PairedTransform | None = None, seed: int = 0):
        if not samples:
            raise DatasetError(f"{root}: split {split!r} has no images")
        self.root, self.split = Path(root), split
        self.samples = list(samples)
        self.class_names = tuple(class_names)
        self.transform = transform
        self.seed, self.epoch = seed, 0
        self.min_side = 1  # callers set the backbone's patch size
        self._conversion_noted = Once()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.samples)

    def decode_mask(self, raw: np.ndarray) -> np.ndarray:
        """Raw mask file values → class indices with ``IGNORE_INDEX`` (identity by default)."""
        return raw

    def read_image(self, index: int) -> Image.Image:
        """Upright 8-bit RGB image (EXIF orientation applied); grayscale, palette, CMYK and RGBA images are
        converted, 16-bit and float ones scaled to 0..255 (:mod:`hummingbird.imageio`; one warning per
        dataset, also with several loader workers)."""
        path = self.samples[index].image
        image, stored = read_rgb_stored(path)
        if stored.mode != "RGB" and self._conversion_noted.claim():
            scaled = " scaled to 8 bits and" if is_high_bit_depth(stored.mode) else ""
            warn(f"{path}: {stored.mode} image{scaled} converted to RGB (further conversions in {self.root} are "
                 f"not reported)")
        return image

    def read_mask(self, index: int) -> np.ndarray:
        """Mask ``(H, W)`` int64 of class indices and ``IGNORE_INDEX``."""
        path = self.samples[index].mask
        if path is None:
            raise DatasetError(f"{self.samples[index].image}: no mask for this image")
        try:
            with Image.open(path) as img:
                raw = np.array(img)
        except (OSError, SyntaxError, ValueError) as exc:
            raise DatasetError(f"{path}: cannot read mask, unreadable or truncated ({exc})") from exc
        if raw.ndim != 2:
            raise DatasetError(f"{path}: mask is a {raw.shape[-1]}-channel colour image (RGB palette colours?); "
                               f"expected a single-channel PNG of class indices (e.g. a palette-mode PNG "
                               f"as in VOC SegmentationClass, or grayscale values 0..C-1 and 255)")
        mask = self.decode_mask(raw.astype(np.int64))
        outside = np.unique(mask[(mask != IGNORE_INDEX) & ((mask < 0) | (mask >= self.num_classes))])
        if outside.size:
            raise DatasetError(f"{path}: mask values {outside[:10].tolist()} are outside the {self.num_classes} "
                               f"classes [0, {self.num_classes - 1}] and not the ignore index {IGNORE_INDEX}")
        return mask

    def load_sample(self, index: int) -> tuple[Image.Image, np.ndarray]:
        """Read and check one image and its mask (sizes agree, image at least ``min_side`` px)."""
        image, mask = self.read_image(index), self.read_mask(index)
        if mask.shape != (image.height, image.width):
            turned = stored_image(self.samples[index].image)
            why = (f" (the image is stored turned, EXIF orientation {turned.orientation}, and read upright as viewers "
                   f"show it; the mask must be upright too)" if turned.turned else "")
            raise DatasetError(f"{self.samples[index].mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its "
                               f"image is {image.width}x{image.height}{why}")
        if min(image.width, image.height) < self.min_side:
            raise DatasetError(f"{self.samples[index].image}: image is {image.width}x{image.height}, smaller than "
                               f"one {self.min_side}-px patch")
        return image, mask

    def sample_seed(self, index: int) -> int:
        """Seed of sample ``index``'s augmentation in the current epoch."""
        return zlib.crc32(f"{self.seed}/{self.epoch}/{index}".encode())

    def __getitem__(self, index: int) -> dict:
        image, mask = self.load_sample(index)
        if self.transform is None:
            image_t = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255
            mask_t, view = torch.from_numpy(mask), torch.tensor([0, 0, image.height, image.width, 0])
        else:
            image_t, mask_t, view = self.transform(image, mask, self.sample_seed(index))
        return {"image": image_t, "mask": mask_t, "view": view, "index": index, "id": self.samples[index].id}

    def first(self, count: int | None) -> "SegmentationDataset":
        """The first ``count`` images (all when ``count`` is ``None``), e.g. for smoke runs."""
        return self if count is None else self.subset([s.id for s in self.samples[:count]], "first images")

    def subset(self, ids: Sequence[str], source: str = "file set") -> "SegmentationDataset":
        """The same dataset restricted to ``ids`` (in the order given)."""
        by_id = {s.id: s for s in self.samples}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise DatasetError(f"{source}: {len(missing)} ids are not in split {self.split!r} of {self.root}: "
                               f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.samples = [by_id[i] for i in ids]
        return clone


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
        ids_file = _first_existing(voc, _VOC_SPLIT_FILES.get(split, [f"ImageSets/Segmentation/{split}.txt"]))
        if ids_file is None:
            raise DatasetError(f"{voc}: no list for split {split!r} (looked for "
                               f"{', '.join(_VOC_SPLIT_FILES.get(split, [f'ImageSets/Segmentation/{split}.txt']))})")
        mask_dirs = ["SegmentationClassAug"] if split == "trainaug" else ["SegmentationClass", "SegmentationClassAug"]
        mask_dir = next((voc / d for d in mask_dirs if (voc / d).is_dir()), None)
        if mask_dir is None:
            raise DatasetError(f"{voc}: no mask folder ({' or '.join(mask_dirs)}) for split {split!r}")
        samples = [SampleFiles(i, voc / "JPEGImages" / f"{i}.jpg", mask_dir / f"{i}.png")
                   for i in read_id_list(ids_file)]
        _require_files(samples, voc)
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
        _require_files(samples, ade)
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
            ids_file = _first_existing(root, [f"splits/{split}.txt", f"ImageSets/Segmentation/{split}.txt",
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


def read_class_names(path: Path, num_classes: int | None = None) -> list[str]:
    """Class names from ``classes.txt`` (one per line, blank lines skipped), checked against
    ``num_classes`` when given and against the 255 indices an 8-bit mask can hold besides ignore."""
    names = read_lines(path, "class list")
    if not names:
        raise DatasetError(f"{path}: lists no class names")
    if num_classes is not None and num_classes != len(names):
        raise DatasetError(f"{path}: lists {len(names)} classes but --num-classes is {num_classes}")
    if len(names) > IGNORE_INDEX:
        raise DatasetError(f"{path}: lists {len(names)} classes; masks hold at most {IGNORE_INDEX} (255 is ignored)")
    return names


def read_id_list(path: str | Path) -> list[str]:
    """Ids from a text file, one per line (first whitespace-separated field; blank lines skipped)."""
    ids = [line.split()[0] for line in read_lines(path, "id list")]
    if not ids:
        raise DatasetError(f"{path}: id list is empty")
    return [Path(i).stem if "/" in i else i for i in ids]


def _first_existing(root: Path, relative: Sequence[str]) -> Path | None:
    return next((root / r for r in relative if (root / r).is_file()), None)


def _require_files(samples: Sequence[SampleFiles], root: Path) -> None:
    missing = [str(p) for s in samples for p in (s.image, s.mask) if p is not None and not p.is_file()]
    if missing:
        raise DatasetError(f"{root}: {len(missing)} listed files are missing: {', '.join(missing[:3])}"
                           f"{' ...' if len(missing) > 3 else ''}")




def _coco(variant: str):
    def make(root, split, transform=None, seed=0, **kwargs):
        return COCOSegmentation(root, split, transform, seed, variant=variant, **kwargs)

    return make


def load_dataset(kind: str, root: str | Path, split: str, transform: PairedTransform | None = None,
                 seed: int = 0, fileset: str | Path | None = None, **kwargs) -> SegmentationDataset:
    """Open a dataset by kind (``voc``, ``ade20k``, ``folder``, ...), optionally restricted to the ids of a
    file set: a text file of ids (one per line) or a shipped name such as ``voc:1/128:42``
    (:mod:`hummingbird.filesets`)."""
    if kind not in DATASETS:
        raise DatasetError(f"unknown dataset kind {kind!r}; use one of {', '.join(DATASETS)}")
    dataset = DATASETS[kind](root, split, transform=transform, seed=seed, **kwargs)
    if fileset is not None:
        from hummingbird.filesets import resolve_fileset

        dataset = dataset.subset(read_id_list(resolve_fileset(fileset)), source=str(fileset))
    return dataset


# ----------------------------------------------------------------------------- COCO and Cityscapes

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
        class_names, lookup = _coco_classes(coco, variant)
        image_ids = sorted(coco.getImgIds())
        samples = [SampleFiles(str(i), image_dir / coco.imgs[i]["file_name"], mask_dir / f"{i}.png") for i in image_ids]
        _render_coco_masks(coco, image_ids, mask_dir, lookup, background=0 if variant == "things" else IGNORE_INDEX,
                           progress=progress)
        _require_files(samples, root)
        super().__init__(root, split, samples, class_names, transform, seed)


def _quiet():
    import contextlib
    import io

    return contextlib.redirect_stdout(io.StringIO())


def _coco_classes(coco, variant: str) -> tuple[list[str], dict[int, int]]:
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

    from hummingbird.atomic import atomic_path, make_folder

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
        _require_files(samples, root)
        super().__init__(root, split, samples, CITYSCAPES_CLASSES, transform, seed)
        self._table = np.full(256, IGNORE_INDEX, dtype=np.int64)
        for label_id, train_id in _CITYSCAPES_TRAIN_IDS.items():
            self._table[label_id] = train_id

    def decode_mask(self, raw: np.ndarray) -> np.ndarray:
        return self._table[raw.clip(0, 255)]


DATASETS = {"voc": VOCSegmentation, "ade20k": ADE20KSegmentation, "folder": FolderSegmentation,
            "coco_things": _coco("things"), "coco_stuff": _coco("stuff"), "cityscapes": CityscapesSegmentation}
DATASET_KINDS = tuple(DATASETS)
