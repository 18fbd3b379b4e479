"""Extract archives into a staging folder beside the dataset, and move finished folders into place.

A dataset appears under its final name only once it is complete: everything is extracted and converted
inside ``<root>/.staging-<dataset>-*``, which is removed on any error or interruption. An archive already
extracted by the user (a folder) is taken file by file as its members would be: hard links where the
staging folder is on the same file system, copies elsewhere; the user's files are never changed."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from hummingbird.errors import DatasetError

Keep = Callable[[str], bool]  # member name → extract it?


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def extract(archive: Path, into: Path, keep: Keep | None = None, progress: bool = True) -> None:
    """Extract the members of a tar (any compression) or zip archive that ``keep`` accepts (all by default).
    Members that would land outside ``into`` and damaged zip members (CRC) are refused. ``archive`` may be
    the top folder of an extracted archive (e.g. ``VOCdevkit/``): its files are taken as the members
    ``<folder name>/<path>`` (linked or copied)."""
    from tqdm.auto import tqdm

    keep = keep or (lambda name: True)
    into.mkdir(parents=True, exist_ok=True)
    try:
        if archive.is_dir():
            members = [(f"{archive.name}/{p.relative_to(archive).as_posix()}", p) for p in sorted(archive.rglob("*"))
                       if p.is_file()]
            for name, path in tqdm([m for m in members if keep(m[0])], desc=f"take {archive.name}/", unit="file",
                                   disable=not progress):
                _link_or_copy(path, into / name)
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                members = [m for m in zf.infolist() if keep(m.filename)]
                for member in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=not progress):
                    if not (into / member.filename).resolve().is_relative_to(into.resolve()):
                        raise DatasetError(f"{archive}: member {member.filename} points outside the folder")
                    zf.extract(member, into)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tf, tqdm(desc=f"extract {archive.name}", unit="file",
                                                          disable=not progress) as bar:
                for member in tf:  # streamed: a .tgz is read once
                    if keep(member.name):
                        tf.extract(member, into, filter="data")
                        bar.update()
        else:
            raise DatasetError(f"{archive}: neither a zip nor a tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise DatasetError(f"{archive}: cannot extract ({exc})") from exc
        raise DatasetError(f"{archive}: damaged archive ({exc})") from exc


@contextmanager
def staging(root: Path, dataset: str) -> Iterator[Path]:
    """A temporary folder on the same file system as ``root`` (so finished folders move by rename); it is
    removed when the block ends, however it ends. A ``root`` that cannot be written to is an
    :class:`~hummingbird.errors.OutputError` naming it."""
    from hummingbird.files.atomic import make_folder, write_error

    make_folder(root)
    try:
        folder = Path(tempfile.mkdtemp(prefix=f".staging-{dataset}-", dir=root))
    except OSError as exc:
        raise write_error(root, exc) from None
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def move_into_place(source: Path, target: Path) -> None:
    """Rename a finished folder to its final name (refused if something is there already)."""
    if target.exists():
        raise DatasetError(f"{target}: already exists; move it away to prepare it again")
    target.parent.mkdir(parents=True, exist_ok=True)
    source.rename(target)
