"""The archives each dataset is prepared from: file name, official URL, checksum, and where the checksum
comes from. Checksums are ``"<algorithm>:<hex digest>"`` (md5, sha1 or sha256)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

from hummingbird.errors import ConfigError


@dataclass(frozen=True)
class Archive:
    """One downloadable archive. ``checksum`` is ``None`` only for archives behind a login (Cityscapes),
    which are never downloaded; their zip CRCs are still checked while extracting."""

    name: str  # file name, also the key of a checksum override
    url: str
    checksum: str | None
    checksum_source: str
    size: str = ""  # as the publisher states it, for the offline message
    content: str = ""  # a path inside the archive that marks its extracted content (--from-archive FOLDER)

    @property
    def algorithm(self) -> str:
        return self.checksum.split(":", 1)[0]

    @property
    def digest(self) -> str:
        return self.checksum.split(":", 1)[1]


_TORCHVISION = "torchvision.datasets ({}), the value torchvision verifies on download"
_COCO_MD5 = ("MD5 as declared by public COCO downloaders (e.g. PaddleDetection ppdet/utils/download.py); "
             "COCO itself publishes none")

ARCHIVES: dict[str, Archive] = {a.name: a for a in (
    Archive("VOCtrainval_11-May-2012.tar", "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
            "md5:6cd6e144f989b92b3379bac3b3de84fd", _TORCHVISION.format("voc.py, DATASET_YEAR_DICT['2012']"), "1.9 GB",
            "VOCdevkit/VOC2012/JPEGImages"),
    Archive("benchmark.tgz",
            "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
            "md5:82b4d87ceb2ed10f6038a1cba92111cb", _TORCHVISION.format("sbd.py, SBDataset.md5"), "1.4 GB",
            "benchmark_RELEASE/dataset/cls"),
    Archive("ADEChallengeData2016.zip", "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip",
            "sha1:219e1696abb36c8ba3a3afe7fb2f4b4606a897c7",
            "GluonCV scripts/datasets/ade20k.py (SHA-1 it verifies on download)", "923 MB",
            "ADEChallengeData2016/images"),
    Archive("train2017.zip", "http://images.cocodataset.org/zips/train2017.zip",
            "md5:cced6f7f71b7629ddf16f17bbcfab6b2", _COCO_MD5, "18 GB", "train2017"),
    Archive("val2017.zip", "http://images.cocodataset.org/zips/val2017.zip",
            "md5:442b8da7639aecaf257c1dceb8ba8c80", _COCO_MD5, "1 GB", "val2017"),
    Archive("stuff_annotations_trainval2017.zip",
            "http://images.cocodataset.org/annotations/stuff_annotations_trainval2017.zip",
            "md5:2a27c15a2dfcbd2e1c9276dc23cac101", _COCO_MD5.replace("PaddleDetection ppdet/utils/download.py",
                                                                       "several COCO download scripts"), "1.1 GB",
            "annotations/stuff_train2017_pixelmaps.zip"),
    Archive("gtFine_trainvaltest.zip", "https://www.cityscapes-dataset.com/file-handling/?packageID=1", None,
            "none (download needs a login; zip CRCs checked on extraction)", "241 MB", "gtFine"),
    Archive("leftImg8bit_trainvaltest.zip", "https://www.cityscapes-dataset.com/file-handling/?packageID=3", None,
            "none (download needs a login; zip CRCs checked on extraction)", "11 GB", "leftImg8bit"),
)}

# Archives each dataset needs, in the order they are fetched.
DATASET_ARCHIVES: dict[str, tuple[str, ...]] = {
    "voc": ("VOCtrainval_11-May-2012.tar", "benchmark.tgz"),
    "ade20k": ("ADEChallengeData2016.zip",),
    "coco_stuff": ("train2017.zip", "val2017.zip", "stuff_annotations_trainval2017.zip"),
    "cityscapes": ("gtFine_trainvaltest.zip", "leftImg8bit_trainvaltest.zip"),
}
PREPARED_DATASETS = tuple(DATASET_ARCHIVES)
LOGIN_ONLY = frozenset({"cityscapes"})  # never downloaded: --from-archive only
SBD_ARCHIVE = "benchmark.tgz"  # VOC's trainaug masks and ids; left out with sbd=False (--no-sbd)

_DIGEST_LENGTHS = {32: "md5", 40: "sha1", 64: "sha256"}


def read_checksums(path: str | Path) -> dict[str, str]:
    """Checksums from a file in ``md5sum``/``sha1sum``/``sha256sum`` output format (``<hex>  <file name>``
    per line, ``#`` comments); the algorithm is told from the digest's length."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: checksum file not found")
    found = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"\s*([0-9a-fA-F]+)\s+\*?(\S+)\s*", line)
        if match is None or len(match.group(1)) not in _DIGEST_LENGTHS:
            raise ConfigError(f"{path}:{number}: expected '<md5, sha1 or sha256 hex digest>  <file name>'")
        digest, name = match.groups()
        found[Path(name).name] = f"{_DIGEST_LENGTHS[len(digest)]}:{digest.lower()}"
    return found


def archives_for(dataset: str, checksums: Mapping[str, str] | None = None, sbd: bool = True) -> list[Archive]:
    """The archives of ``dataset`` with any checksum ``overrides`` (file name → ``algorithm:digest``) applied
    (``sbd=False``: VOC without SBD's ``benchmark.tgz``)."""
    checksums = checksums or {}
    names = [n for n in DATASET_ARCHIVES[dataset] if sbd or n != SBD_ARCHIVE]
    return [replace(ARCHIVES[n], checksum=checksums[n], checksum_source="override") if n in checksums else ARCHIVES[n]
            for n in names]


def extracted_top(entry: Path, archive: Archive) -> Path | None:
    """The top folder of ``archive``'s extracted content when the folder ``entry`` is it, holds it, or lies
    on the way to its marker (``VOCdevkit/``, ``VOCdevkit/VOC2012/`` or the folder holding ``VOCdevkit/``
    for the VOC tar); ``None`` otherwise."""
    parts = Path(archive.content).parts
    for depth in range(len(parts)):
        if depth and tuple(entry.parts[-depth:]) != parts[:depth]:
            continue
        root = entry.parents[depth - 1] if depth else entry
        if (root / archive.content).exists():
            return root / parts[0]
    return None
