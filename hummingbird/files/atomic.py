"""Atomic file writes: write to a temporary name in the target folder, then rename into place.

Every OS error while writing (disk full, ``ulimit -f`` file size limit, read-only folder, no
permission) becomes one :class:`~hummingbird.errors.OutputError` naming the path and the cause; the
temporary file is removed and an earlier file under the final name stays as it was.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hummingbird.errors import OutputError

_HINTS = {
    errno.ENOSPC: "the disk is full; free space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up; free space or write elsewhere",
    errno.EFBIG: "the file is larger than this process may write (ulimit -f); raise the limit or write elsewhere",
    errno.EROFS: "the file system is mounted read-only; write elsewhere",
    errno.EACCES: "no permission to write there; write elsewhere or change the folder's permissions",
    errno.EPERM: "the folder does not allow new files (permissions or an immutable attribute); write elsewhere",
}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def errno_of(exc: BaseException) -> int | None:
    """The OS error number of ``exc``: an ``OSError``'s own, or the ``os error N`` / ``code: N`` a Rust
    writer (safetensors) puts in its message."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    found = re.search(r"(?:os error|code:) (\d+)", str(exc))
    return int(found.group(1)) if found else None


def write_error(path: str | Path, exc: BaseException) -> OutputError:
    """One-line :class:`OutputError`: ``<path>: cannot write: <cause> (<ERRNO>); <what to do>``."""
    number = errno_of(exc)
    if number is None:
        return OutputError(f"{path}: cannot write ({type(exc).__name__}: {exc})")
    cause = f"{os.strerror(number)} ({errno.errorcode.get(number, number)})"
    hint = _HINTS.get(number)
    return OutputError(f"{path}: cannot write: {cause}" + (f"; {hint}" if hint else ""))


def make_folder(folder: str | Path) -> Path:
    """``mkdir -p folder``; an OS error is an :class:`OutputError` naming the folder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:  # the folder, or one above it, is a file
        blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise OutputError(f"{blocking}: is a file, not a folder; cannot write {folder} there") from exc
    except OSError as exc:
        raise write_error(folder, exc) from exc
    return folder


@contextmanager
def atomic_path(path: str | Path, errors: tuple[type[BaseException], ...] = ()) -> Iterator[str]:
    """Yield a temporary file name next to ``path``; on success it replaces ``path`` (permissions as a
    normally created file), on any exception or interruption it is removed and ``path`` is untouched.
    OS errors (and ``errors``, a writer's own I/O exceptions) become an :class:`OutputError` naming
    ``path`` and the cause."""
    path = Path(path)
    make_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from exc
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except (OSError, *errors) as exc:
        raise write_error(path, exc) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def save_image(image, path: str | Path, **options) -> Path:
    """Save a Pillow ``image`` to ``path`` atomically (format from the suffix unless ``format=`` given)."""
    options.setdefault("format", image_format(path))
    with atomic_path(path) as tmp:
        image.save(tmp, **options)
    return Path(path)


def image_format(path: str | Path) -> str:
    """Pillow format name of ``path``'s suffix (``.png`` → ``PNG``, ``.jpg`` → ``JPEG``)."""
    from PIL import Image

    Image.init()
    suffix = Path(path).suffix.lower()
    if suffix not in Image.EXTENSION:
        raise OutputError(f"{path}: unknown image suffix {suffix!r}; use .png or .jpg")
    return Image.EXTENSION[suffix]


def write_json(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` as indented JSON atomically (temporary file in the same folder, then rename)."""
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
    return Path(path)
