"""How datasets are read in batches: the loader options every job shares, and the one DataLoader factory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from hummingbird.datasets.base import SegmentationDataset


@dataclass
class LoaderOptions:
    """Batch size, loader worker processes, the device batches go to, and whether to show progress bars."""

    batch_size: int = 8
    num_workers: int = 0
    device: str = "cpu"
    progress: bool = True


def make_loader(dataset: SegmentationDataset, opts: LoaderOptions,
                indices: Sequence[int] | None = None) -> torch.utils.data.DataLoader:
    """Batches of ``dataset`` (only ``indices``, keeping their dataset-wide index and seeds)."""
    source = dataset if indices is None else torch.utils.data.Subset(dataset, list(indices))
    return torch.utils.data.DataLoader(source, batch_size=opts.batch_size, shuffle=False,
                                       num_workers=opts.num_workers, pin_memory=opts.device.startswith("cuda"))
