"""Rows of one array spread over parts (memory-mapped shards, or CPU tensors), gathered by global row index."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


class RowGather:
    """Rows of one array spread over parts (memory-mapped shards, or CPU tensors), gathered by global
    row index."""

    def __init__(self, parts: Sequence[np.ndarray | torch.Tensor]):
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.parts[0].shape[1:])

    def __getitem__(self, rows: torch.Tensor) -> torch.Tensor:
        return self.gather(rows)

    def gather(self, rows: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Rows ``rows`` (any shape, global numbering) → ``(*rows.shape, ...)`` in ``dtype`` (float32 or
        float16) on the CPU."""
        flat = rows.reshape(-1).numpy()
        shard = np.searchsorted(self.offsets, flat, side="right") - 1
        out = np.empty((len(flat), *self.parts[0].shape[1:]), dtype=np.float16 if dtype == torch.float16 else np.float32)
        for s in np.unique(shard):
            hit = shard == s
            local = flat[hit] - self.offsets[s]
            order = np.argsort(local)  # sorted reads are kinder to the page cache
            out[np.flatnonzero(hit)[order]] = np.asarray(self.parts[s][local[order]])
        return torch.from_numpy(out).reshape(*rows.shape, *self.parts[0].shape[1:])

    def float(self) -> "RowGather":
        return self
