"""``prepare-data``: download (or take), verify, extract and convert a dataset into the layout
:mod:`hummingbird.datasets.base` reads, then check it.

Each dataset is built in a staging folder under ``root`` and renamed into place when complete, with a
``.hummingbird-prepared.json`` stamp inside; a folder with the stamp is not prepared again. Archives are
downloaded to ``root/downloads/`` (resumable) unless ``from_archive`` names them — the archive files, folders
holding them, or folders they were already extracted into (``VOCdevkit/``); a folder that is none of these
is refused by name. A ``file://`` mirror is read in place. Pascal VOC without SBD (``sbd=False``,
``--no-sbd``) needs only the VOC tar and gives its ``train`` and ``val`` splits (no ``trainaug``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from hummingbird.catalog import DEFAULT_SPLITS
from hummingbird.datasets.prepare.archives import (
    ARCHIVES,
    DATASET_ARCHIVES,
    LOGIN_ONLY,
    PREPARED_DATASETS,
    Archive,
    archives_for,
    extracted_top,
)
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
    archives: dict[str, str] = field(default_factory=dict)  # archive name → file (or extracted folder) used
    prepared_now: bool = True
    checks: list = field(default_factory=list)  # hummingbird.datasets.validation.DatasetReport per split
    splits: tuple[str, ...] = ()  # the training and evaluation splits prepared (voc without SBD: train, val)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "data_root": self.data_root, "archives": self.archives,
                "prepared_now": self.prepared_now, "splits": list(self.splits), "ok": self.ok,
                "checks": [c.to_dict() for c in self.checks]}


def prepare_dataset(dataset: str, root: str | Path, mirror: str | None = None,
                    from_archive: Sequence[str | Path] = (), checksums: Mapping[str, str] | None = None,
                    delete_archives: bool = False, check: bool = True, progress: bool = True,
                    sbd: bool = True) -> PrepareResult:
    """Prepare ``dataset`` (``voc``, ``ade20k``, ``coco_stuff``, ``cityscapes``) under ``root``.

    ``mirror``: base URL replacing the official host of every download (``file:///...``: a local copy, read in
    place); ``from_archive``: archive files, folders holding them, or folders they were extracted into;
    ``checksums``: archive name → ``algorithm:digest`` replacing the official checksum (for private mirrors
    of other files, and tests); ``sbd``: for VOC, also SBD's trainaug (``False``: VOC's own train and val)."""
    if dataset not in DATASET_ARCHIVES:
        raise ConfigError(f"prepare-data: unknown dataset {dataset!r}; use one of {', '.join(PREPARED_DATASETS)}")
    if not sbd and dataset != "voc":
        raise ConfigError(f"{option('sbd', False)} is for voc only (SBD extends Pascal VOC), not {dataset}")
    root = Path(root)
    folder, data_root = dataset_folders(dataset, root)
    splits = ("train", "val") if dataset == "voc" and not sbd else DEFAULT_SPLITS[dataset]
    result = PrepareResult(dataset, str(data_root), splits=splits)
    stamp = _stamp_folder(dataset, folder) / STAMP
    if stamp.is_file():
        result.prepared_now = False
        result.splits = splits = _stamped_splits(dataset, stamp, sbd)
    else:
        if folder.exists():
            raise DatasetError(f"{folder}: already exists but was not prepared by prepare-data (no {STAMP}); "
                               f"move it away, or use it as it is with {option('data_root', str(data_root))}")
        _check_writable(root)
        archives = archives_for(dataset, checksums, sbd=sbd)
        paths = _archive_files(dataset, archives, root, mirror, from_archive, progress)
        result.archives = {name: str(path) for name, path in paths.items()}
        _build(dataset, root, folder, paths, {a.name: a.checksum for a in archives}, progress, splits)
        if delete_archives:
            for path in paths.values():
                if path.parent == root / "downloads":
                    path.unlink()
    if check:
        from hummingbird.datasets.validation import scan_dataset

        result.checks = [scan_dataset(dataset, str(data_root), split, progress=progress) for split in splits]
    return result


def dataset_folders(dataset: str, root: str | Path) -> tuple[Path, Path]:
    """The folder ``dataset`` lands in under ``root``, and the ``--data-root`` the other commands read."""
    return tuple(Path(root) / name for name in _FOLDERS[dataset])


def _stamped_splits(dataset: str, stamp: Path, sbd: bool) -> tuple[str, ...]:
    """The splits a prepared dataset's stamp records (older stamps: the default ones); asking VOC with SBD of
    a folder prepared without it is refused by name."""
    import json

    recorded = tuple(json.loads(stamp.read_text()).get("splits") or DEFAULT_SPLITS[dataset])
    if dataset == "voc" and sbd and "trainaug" not in recorded:
        raise DatasetError(f"{stamp.parent}: prepared without SBD ({option('sbd', False)}), so it has no trainaug; "
                           f"use {option('sbd', False)} (splits train and val), or move the folder away and prepare "
                           f"it again with SBD")
    return recorded


def _check_writable(root: Path) -> None:
    """:class:`~hummingbird.errors.OutputError` naming ``root`` when no file can be created there (read-only
    file system, no permission), before any download."""
    import tempfile

    from hummingbird.files.atomic import make_folder, write_error

    make_folder(root)
    try:
        with tempfile.NamedTemporaryFile(dir=root, prefix=".hummingbird-write-test-"):
            pass
    except OSError as exc:
        raise write_error(root, exc) from None


def _stamp_folder(dataset: str, folder: Path) -> Path:
    return folder / "VOC2012" if dataset == "voc" else folder


def _build(dataset: str, root: Path, folder: Path, paths: dict[str, Path], checksums: dict[str, str | None],
           progress: bool, splits: tuple[str, ...]) -> None:
    import json
    from importlib import import_module

    from hummingbird.datasets.prepare.unpack import move_into_place, staging

    builder = import_module(f"hummingbird.datasets.prepare.{dataset}")
    with staging(root, dataset) as stage:
        built = builder.build(stage, paths, progress=progress)
        stamp = {"dataset": dataset, "prepared": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "archives": {name: "extracted folder " + str(paths[name]) if paths[name].is_dir() else checksum
                              for name, checksum in checksums.items()}, "splits": list(splits)}
        (_stamp_folder(dataset, built) / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
        move_into_place(built, folder)


def _archive_files(dataset: str, archives: list[Archive], root: Path, mirror: str | None,
                   from_archive: Sequence[str | Path], progress: bool) -> dict[str, Path]:
    """Each archive's file (or extracted folder): given with ``from_archive`` (files verified), else
    downloaded to ``root/downloads`` (or read in place from a ``file://`` mirror)."""
    from hummingbird.datasets.prepare.download import fetch, verify

    given = _given_archives(dataset, from_archive, [a.name for a in archives])
    paths = {}
    for archive in archives:
        if archive.name in given:
            if given[archive.name].is_file():
                verify(given[archive.name], archive, progress)
            paths[archive.name] = given[archive.name]
        elif dataset in LOGIN_ONLY:
            raise DatasetError(f"{dataset}: {archive.name} is needed; download it (after logging in) from "
                               f"{archive.url} and pass {option('from_archive', 'PATH', raw=True)}")
        else:
            paths[archive.name] = fetch(archive, root / "downloads", mirror, progress)
    return paths


def _given_archives(dataset: str, from_archive: Sequence[str | Path], names: Sequence[str]) -> dict[str, Path]:
    """Archive name → file or extracted folder, from files (named as the official archive), folders holding
    such files, or folders an archive was extracted into. A folder that is none of these is refused by
    name (it would otherwise be passed over and the archive downloaded)."""
    given = {}
    for entry in map(Path, from_archive):
        if entry.is_dir():
            found = {n: entry / n for n in names if (entry / n).is_file()}
            for n in names:
                top = None if n in found else extracted_top(entry, ARCHIVES[n])
                if top is not None:
                    found[n] = top
            if not found:
                contents = ", ".join(f"{Path(ARCHIVES[n].content).parts[0]}/" for n in names)
                raise ConfigError(f"{option('from_archive', str(entry))}: a folder holding none of {', '.join(names)} "
                                  f"and none of their extracted folders ({contents}); give the archive files, the "
                                  f"folder holding them, or the folder they were extracted into")
            given.update(found)
        elif not entry.exists():
            raise ConfigError(f"{option('from_archive', str(entry))}: no such file or folder")
        elif entry.name not in DATASET_ARCHIVES[dataset]:
            raise ConfigError(f"{option('from_archive', str(entry))}: not an archive of {dataset} (expected "
                              f"{', '.join(names)})")
        elif entry.name in names:
            given[entry.name] = entry
    return given
