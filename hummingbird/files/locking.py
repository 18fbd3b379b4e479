"""One writer per output: an exclusive ``fcntl.flock`` on ``<output>.lock`` beside the output.

Two ``build-memory`` runs given the same ``--out`` (a bank file or a sharded bank folder) would
otherwise both write it and the last one would silently win. The lock is held for the whole command
and released when it ends, however it ends (the kernel drops it even if the process is killed); the
lock file is removed on a normal exit.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hummingbird.errors import OutputBusyError
from hummingbird.files.atomic import make_folder, write_error


def lock_path(output: str | Path) -> Path:
    """``<output>.lock`` beside the output (for a folder output: beside the folder)."""
    output = Path(output)
    return output.with_name(output.name.rstrip("/") + ".lock")


@contextmanager
def exclusive_output(output: str | Path, option: str = "--out") -> Iterator[Path]:
    """Hold the lock of ``output`` while the block runs; raise :class:`OutputBusyError` naming the lock
    file and the process holding it if another process holds it, and
    :class:`~hummingbird.errors.OutputError` naming the output when its folder cannot be written."""
    lock = lock_path(output)
    make_folder(lock.parent)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(output, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputBusyError(f"{output}: another hummingbird process (pid {holder}) is writing this {option}; "
                                  f"its lock file {lock} is held; wait for it to finish or choose another {option}"
                                  ) from None
        try:  # the previous holder may have removed the file between our open and our lock
            current = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:  # a full disk or a size limit: the lock is held all the same, the pid is a courtesy
        pass
    try:
        yield lock
    finally:
        try:
            os.unlink(lock)
        except FileNotFoundError:
            pass
        os.close(fd)
