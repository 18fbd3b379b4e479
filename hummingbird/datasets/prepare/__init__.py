"""``prepare-data``: download (or take), verify, extract and convert a dataset into the layout
:mod:`hummingbird.datasets.base` reads, then check it.

Each dataset is built in a staging folder under ``root`` and renamed into place when complete, with a
``.hummingbird-prepared.json`` stamp inside; a folder with the stamp is not prepared again. Archives are
downloaded to ``root/downloads/`` (resumable) unless ``from_archive`` names them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from hummingbird.catalog import DEFAULT_SPLITS
from hummingbird.datasets.prepare.archives import DATASET_ARCHIVES, LOGIN_ONLY, PREPARED_DATASETS, Archive, archives_for
from hummingbird.errors import ConfigError, DatasetError, option

STAMP = ".hummingbird-prepared.json"

# Folder each dataset lands in under root, and the --data-root to give the other commands.
_FOLDERS = {"voc": ("VOCdevkit", "VOCdevkit"), "ade20k": ("ADEChallengeData2016", "ADEChallengeData2016"),
            "coco_stuff": ("coco", "coco"), "cityscapes": ("cityscapes", "cityscapes")}


@dataclass
class PrepareResult:
    """What :func:`prepare_dataset` did: the dataset's ``--data-root``, archives used, per-split checks."""

    dataset: str
    data_root: str
    archives: dict[str, str] = field(default_factory=dict)  # archive name → file used
    prepared_now: bool = True
    checks: list = field(default_factory=list)  # hummingbird.datasets.validation.DatasetReport per split

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "data_root": self.data_root, "archives": self.archives,
                "prepared_now": self.prepared_now, "ok": self.ok, "checks": [c.to_dict() for c in self.checks]}


def prepare_dataset(dataset: str, root: str | Path, mirror: str | None = None,
                    from_archive: Sequence[str | Path] = (), checksums: Mapping[str, str] | None = None,
                    delete_archives: bool = False, check: bool = True, progress: bool = True) -> PrepareResult:
    """Prepare ``dataset`` (``voc``, ``ade20k``, ``coco_stuff``, ``cityscapes``) under ``root``.

    ``mirror``: base URL replacing the official host of every download; ``from_archive``: archive files
    (or folders holding them) already on disk; ``checksums``: archive name → ``algorithm:digest``
    replacing the official checksum (for private mirrors of other files, and tests)."""
    if dataset not in DATASET_ARCHIVES:
        raise ConfigError(f"prepare-data: unknown dataset {dataset!r}; use one of {', '.join(PREPARED_DATASETS)}")
    root = Path(root)
    folder, data_root = (root / name for name in _FOLDERS[dataset])
    result = PrepareResult(dataset, str(data_root))
    if (_stamp_folder(dataset, folder) / STAMP).is_file():
        result.prepared_now = False
    else:
        if folder.exists():
            raise DatasetError(f"{folder}: already exists but was not prepared by prepare-data (no {STAMP}); "
                               f"move it away, or use it as it is with {option('data_root', str(data_root))}")
        archives = archives_for(dataset, checksums)
        paths = _archive_files(dataset, archives, root, mirror, from_archive, progress)
        result.archives = {name: str(path) for name, path in paths.items()}
        _build(dataset, root, folder, paths, {a.name: a.checksum for a in archives}, progress)
        if delete_archives:
            for path in paths.values():
                if path.parent == root / "downloads":
                    path.unlink()
    if check:
        from hummingbird.datasets.validation import scan_dataset

        result.checks = [scan_dataset(dataset, str(data_root), split, progress=progress)
                         for split in DEFAULT_SPLITS[dataset]]
    return result


def _stamp_folder(dataset: str, folder: Path) -> Path:
    return folder / "VOC2012" if dataset == "voc" else folder


def _build(dataset: str, root: Path, folder: Path, paths: dict[str, Path], checksums: dict[str, str | None],
           progress: bool) -> None:
    import json
    from importlib import import_module

    from hummingbird.datasets.prepare.unpack import move_into_place, staging

    builder = import_module(f"hummingbird.datasets.prepare.{dataset}")
    with staging(root, dataset) as stage:
        built = builder.build(stage, paths, progress=progress)
        stamp = {"dataset": dataset, "prepared": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "archives": checksums}
        (_stamp_folder(dataset, built) / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
        move_into_place(built, folder)


def _archive_files(dataset: str, archives: list[Archive], root: Path, mirror: str | None,
                   from_archive: Sequence[str | Path], progress: bool) -> dict[str, Path]:
    """Each archive's file: given with ``from_archive`` (verified), else downloaded to ``root/downloads``."""
    from hummingbird.datasets.prepare.download import fetch, verify

    given = _given_archives(dataset, from_archive)
    paths = {}
    for archive in archives:
        if archive.name in given:
            verify(given[archive.name], archive, progress)
            paths[archive.name] = given[archive.name]
        elif dataset in LOGIN_ONLY:
            raise DatasetError(f"{dataset}: {archive.name} is needed; download it (after logging in) from "
                               f"{archive.url} and pass {option('from_archive', 'PATH', raw=True)}")
        else:
            paths[archive.name] = fetch(archive, root / "downloads", mirror, progress)
    return paths


def _given_archives(dataset: str, from_archive: Sequence[str | Path]) -> dict[str, Path]:
    """Archive name → file, from files (named as the official archive) or folders holding such files."""
    names = DATASET_ARCHIVES[dataset]
    given = {}
    for entry in map(Path, from_archive):
        if entry.is_dir():
            given.update({n: entry / n for n in names if (entry / n).is_file()})
        elif not entry.is_file():
            raise ConfigError(f"{option('from_archive', str(entry))}: no such file or folder")
        elif entry.name not in names:
            raise ConfigError(f"{option('from_archive', str(entry))}: not an archive of {dataset} (expected {', '.join(names)})")
        else:
            given[entry.name] = entry
    return given
