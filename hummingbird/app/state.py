"""The labelling app's state folder: the photos it serves, their annotations, the class list.

``PHOTOS_DIR/.hummingbird/`` (or ``--state DIR``) holds

* ``annotations/<id>.png``: one index PNG per annotated image (palette mode, class indices, 255 unlabelled)
  whose ``hummingbird-version`` text chunk is the annotation's version; written atomically (temporary
  file, then rename), so a ``kill -9`` leaves the previous annotation or the new one, never a mix;
* ``classes.json``: the class names and colours (``{"names": [...], "colours": [[r, g, b], ...]}``);
* ``features/<pipeline>/<id>.npy``: cached query features (:mod:`hummingbird.app.features`).

The photos are the image files directly inside ``PHOTOS_DIR`` (symbolic links that leave it are skipped); a
photo is only ever looked up by its name in that listing, so no request can reach another file.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from hummingbird.catalog import IMAGE_SUFFIXES
from hummingbird.errors import ConfigError, DatasetError
from hummingbird.files.atomic import atomic_path, make_folder, write_json

VERSION_KEY = "hummingbird-version"
IGNORE = 255


class StaleVersion(Exception):
    """An annotation was written against an older version than the one stored."""

    def __init__(self, name: str, current: int, given: int):
        super().__init__(f"{name}: annotation version {given} is stale, the stored one is {current}; reload it")
        self.current = current


def list_photos(folder: Path) -> dict[str, Path]:
    """Image files directly inside ``folder`` by file name (links leaving it, hidden files and two files of
    one stem refused or skipped)."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: photo folder does not exist")
    root = folder.resolve()
    photos: dict[str, Path] = {}
    stems: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        if path.resolve().parent != root:  # a link to a file elsewhere is not served
            continue
        if path.stem in stems:
            raise ConfigError(f"{path}: two images share the id {path.stem!r} ({stems[path.stem]}); rename one")
        stems[path.stem] = path.name
        photos[path.name] = path
    if not photos:
        raise ConfigError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) directly in this folder")
    return photos


def remove_leftovers(folder: Path) -> None:
    """Delete the temporary files of writes a ``kill -9`` interrupted (``.<name>.<random>.tmp``; the files
    they were to replace are intact)."""
    for path in folder.glob(".*.tmp"):
        path.unlink(missing_ok=True)


def read_class_file(path: str | Path) -> list[str]:
    """Class names of a text file, one per line (blank lines skipped)."""
    from hummingbird.datasets.base import read_class_names

    return read_class_names(Path(path))


class LabelState:
    """Annotations and classes of one photo folder, on disk in ``state_dir``."""

    def __init__(self, state_dir: Path):
        self.root = make_folder(state_dir)
        self.annotation_dir = make_folder(self.root / "annotations")
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}
        remove_leftovers(self.annotation_dir)
        for path in self.annotation_dir.glob("*.png"):
            version = self._read_version(path)
            if version is not None:
                self._versions[path.stem] = version

    # --------------------------------------------------------------- classes

    @property
    def classes_file(self) -> Path:
        return self.root / "classes.json"

    def read_classes(self) -> tuple[list[str], list[list[int]]] | None:
        if not self.classes_file.is_file():
            return None
        try:
            data = json.loads(self.classes_file.read_text())
            return [str(n) for n in data["names"]], [[int(v) for v in c] for c in data["colours"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{self.classes_file}: not a class list of this app ({exc})") from exc

    def write_classes(self, names: list[str], colours: list[list[int]]) -> None:
        write_json(self.classes_file, {"names": list(names), "colours": [list(map(int, c)) for c in colours]})

    # --------------------------------------------------------------- annotations

    def _path(self, image_id: str) -> Path:
        return self.annotation_dir / f"{image_id}.png"

    @staticmethod
    def _read_version(path: Path) -> int | None:
        try:
            with Image.open(path) as img:
                img.load()
                return int(img.text.get(VERSION_KEY, 0)) if hasattr(img, "text") else 0
        except (OSError, SyntaxError, ValueError):
            return None  # an unreadable file (never written by this app: writes are atomic) is ignored

    def version(self, image_id: str) -> int:
        """Version of ``image_id``'s annotation (0: none yet)."""
        return self._versions.get(image_id, 0)

    def annotated(self) -> list[str]:
        return sorted(self._versions)

    def read(self, image_id: str) -> np.ndarray | None:
        """The stored annotation ``(H, W)`` uint8, or ``None``."""
        path = self._path(image_id)
        if image_id not in self._versions or not path.is_file():
            return None
        with Image.open(path) as img:
            return np.array(img)

    def write(self, image_id: str, mask: np.ndarray, palette: np.ndarray, expected: int | None = None) -> int:
        """Store ``mask`` as ``image_id``'s annotation; returns the new version. ``expected``: the version the
        writer last read; a different stored version raises :class:`StaleVersion` (nothing written)."""
        with self._lock:
            current = self.version(image_id)
            if expected is not None and expected != current:
                raise StaleVersion(image_id, current, expected)
            new = current + 1
            values = np.ascontiguousarray(mask, dtype=np.uint8)
            img = Image.frombytes("P", (values.shape[1], values.shape[0]), values.tobytes())
            img.putpalette(palette.astype(np.uint8).reshape(-1).tolist())
            info = PngImagePlugin.PngInfo()
            info.add_text(VERSION_KEY, str(new))
            with atomic_path(self._path(image_id)) as tmp:
                img.save(tmp, format="PNG", pnginfo=info)
            self._versions[image_id] = new
            return new
