"""How datasets are read in batches: the loader options every job shares, and the one DataLoader factory.

Loader worker processes hand their batches over through shared memory (``/dev/shm``). Where it is too
small (a container's 64 MB default) or a file size limit (``ulimit -f``) stops those files, torch fails
with a traceback or a bus error deep in its internals. :class:`Batches` turns that into one line naming
the cause: when it happens before the first batch, it says so in a warning and reads the data in this
process instead (``num_workers = 0``); later, it stops with a :class:`~hummingbird.errors.ConfigError`
that names the cause and ``--num-workers 0``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import torch

from hummingbird.datasets.base import SegmentationDataset
from hummingbird.errors import ConfigError, option, warn

# What torch says when its workers cannot use shared memory (files under /dev/shm, or a file size limit).
_SHARED_MEMORY_FAILURES = re.compile(
    r"shared memory|/dev/shm|torch_\d+_|unable to (write to|resize|open|mmap) (file|shared)|Bus error|"
    r"No space left on device|File too large|exited unexpectedly", re.IGNORECASE)


@dataclass
class LoaderOptions:
    """Batch size, loader worker processes, the device batches go to, and whether to show progress bars."""

    batch_size: int = 8
    num_workers: int = 0
    device: str = "cpu"
    progress: bool = True


def shared_memory_cause(exc: BaseException) -> str | None:
    """The one-line cause when ``exc`` is torch failing to pass a batch from a worker through shared memory,
    else ``None``."""
    text = str(exc)
    if not isinstance(exc, RuntimeError) or not _SHARED_MEMORY_FAILURES.search(text):
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = next((line for line in reversed(lines) if _SHARED_MEMORY_FAILURES.search(line)), lines[-1] if lines else "")
    if "No space left" in text or "Bus error" in text or "out of shared memory" in text:
        why = "the shared memory (/dev/shm) is full or too small"
    elif "File too large" in text:
        why = "a file size limit (ulimit -f) stops the shared-memory files"
    else:
        why = "shared memory is not available to them"
    return f"{why} ({found[:160]})"


class Batches:
    """Batches of a dataset from a DataLoader with ``opts``; see the module for what happens when the
    workers cannot use shared memory."""

    def __init__(self, source, opts: LoaderOptions):
        self.source, self.opts = source, opts

    def _loader(self, opts: LoaderOptions) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(self.source, batch_size=opts.batch_size, shuffle=False,
                                           num_workers=opts.num_workers, pin_memory=opts.device.startswith("cuda"))

    def __len__(self) -> int:
        return len(self._loader(replace(self.opts, num_workers=0)))

    def __iter__(self) -> Iterator[dict]:
        opts, given = self.opts, 0
        while True:
            try:
                for batch in self._loader(opts):
                    yield batch
                    given += 1
                return
            except RuntimeError as exc:
                cause = shared_memory_cause(exc) if opts.num_workers > 0 else None
                if cause is None:
                    raise
                if given:
                    raise ConfigError(f"data-loading worker processes cannot hand batches over: {cause}; run with "
                                      f"{option('num_workers', 0)} (or give the machine more shared memory, e.g. "
                                      f"docker run --shm-size=2g)") from None
                warn(f"data-loading worker processes cannot hand batches over: {cause}; reading the data in this "
                     f"process instead ({option('num_workers', 0)})")
                opts = replace(opts, num_workers=0)


def make_loader(dataset: SegmentationDataset, opts: LoaderOptions, indices: Sequence[int] | None = None) -> Batches:
    """Batches of ``dataset`` (only ``indices``, keeping their dataset-wide index and seeds)."""
    source = dataset if indices is None else torch.utils.data.Subset(dataset, list(indices))
    return Batches(source, opts)
