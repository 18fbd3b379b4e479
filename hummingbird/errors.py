"""Messages meant for users: exceptions whose message names the file or option and the problem (the
command line prints them as one line, exit status 2), and warnings in the user's words, shown once.

:class:`HummingbirdWarning` prints as ``hummingbird: warning: <message>`` (no source file, line number
or source line of this toolkit; other warnings keep Python's format). :class:`Once` is a flag shared
with the DataLoader worker processes, so a note about the data is shown once per dataset, not once
per worker.
"""

from __future__ import annotations

import multiprocessing
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator


class HummingbirdError(Exception):
    """Base class: the CLI prints these as one line and exits with status 2."""


class CheckpointError(HummingbirdError):
    """A weights file is missing, unreadable, or of another architecture."""


class WeightsUnavailableError(HummingbirdError):
    """Pretrained weights were asked for but cannot be obtained (offline, no cache)."""


class DatasetError(HummingbirdError):
    """A dataset folder, split file, image or mask is missing or malformed."""


class BankError(HummingbirdError):
    """A memory-bank file is unreadable or does not fit the pipeline that loads it."""


class ConfigError(HummingbirdError):
    """An option value is invalid (e.g. an input size not divisible by the patch size)."""


class OutputBusyError(HummingbirdError):
    """Another process is writing the same output (its lock file is held)."""


class OutputError(HummingbirdError):
    """A file or folder cannot be written (disk full, file size limit, read-only folder, no permission)."""


class DownloadError(HummingbirdError):
    """An archive cannot be downloaded (offline, host not answering, HTTP error) or fails its checksum."""


class DownloadUnavailableError(DownloadError):
    """An archive's host cannot be reached or refuses it (offline, name not resolved, not answering, HTTP
    error); ``reason`` says which, in a few words."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason


# ----------------------------------------------------------------------------- naming settings in messages

_COMMAND_LINE = [False]  # whether messages name settings as the command line's flags (set by hummingbird.cli)


@contextmanager
def command_line_names() -> Iterator[None]:
    """Within the block, :func:`option` names settings as command-line flags (``--backbone``); elsewhere as
    the Python API's keyword arguments (``backbone=``). The ``hummingbird`` program runs its commands in it."""
    previous, _COMMAND_LINE[0] = _COMMAND_LINE[0], True
    try:
        yield
    finally:
        _COMMAND_LINE[0] = previous


def option(name: str, value=None, raw: bool = False) -> str:
    """A setting as the caller wrote it: ``--memory-size 5`` on the command line, ``memory_size=5`` from
    Python (``name``: the Python keyword; ``value``: shown after it, when given; on the command line a
    list is shown as ``nargs`` values, a tuple as a comma-separated pair, ``False`` as ``--no-<name>``;
    ``raw``: a placeholder such as ``PATH``, shown as it is in both)."""
    if _COMMAND_LINE[0]:
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):  # a switch: --sbd / --no-sbd
            return flag if value else "--no-" + name.replace("_", "-")
        if isinstance(value, (list, tuple)):  # a list as nargs ("--layers -1 -4"), a tuple as a pair ("--patch 1,2")
            value = (" " if isinstance(value, list) else ",").join(map(str, value))
        return flag if value is None else f"{flag} {value}"
    return f"{name}=" if value is None else f"{name}={value if raw else repr(value)}"


def note(message: str, show: bool = True) -> None:
    """A progress note for the user on stderr (``show``: the caller's ``progress`` setting; library calls
    are quiet unless asked)."""
    if show:
        print(message, file=sys.stderr)


# ----------------------------------------------------------------------------- warnings


class HummingbirdWarning(UserWarning):
    """A note about the user's data or settings (e.g. an image converted to RGB)."""


_python_format = warnings.formatwarning


def _format(message, category, filename, lineno, line=None) -> str:
    if isinstance(category, type) and issubclass(category, HummingbirdWarning):
        return f"hummingbird: warning: {message}\n"
    return _python_format(message, category, filename, lineno, line)


warnings.formatwarning = _format


def warn(message: str) -> None:
    """Issue ``message`` as a :class:`HummingbirdWarning`."""
    warnings.warn(message, HummingbirdWarning, stacklevel=2)


class Once:
    """A flag that is claimed once across this process and the worker processes it starts (the flag
    lives in shared memory; a copy made other than by starting a process is independent)."""

    def __init__(self, value=None):
        try:
            self._value = value if value is not None else multiprocessing.Value("b", 0)
        except OSError:  # no shared memory on this system: once per process
            self._value = None
        self._local = False

    def claim(self) -> bool:
        """``True`` the first time it is called anywhere, ``False`` afterwards."""
        if self._value is None:
            first, self._local = not self._local, True
            return first
        with self._value.get_lock():
            first = not self._value.value
            self._value.value = 1
        return first

    def __reduce__(self):
        from multiprocessing.context import get_spawning_popen

        if self._value is not None and get_spawning_popen() is not None:  # a worker being started
            return Once, (self._value,)
        return _unshared, (self._value is not None and bool(self._value.value),)


def _unshared(claimed: bool) -> Once:
    once = Once()
    if claimed:
        once.claim()
    return once
