"""Wall time per stage of the evaluation path (data loading, backbone, search, label gather, ...).

``timer = StageTimer("cuda")``; ``with timer("search"): ...``. On CUDA each stage is bracketed by
``torch.cuda.synchronize()`` so that asynchronous kernels are charged to the stage that launched them
(this serialises the device, so a profiled run is slightly slower than an unprofiled one).
Code that accepts a timer defaults to :data:`NO_TIMER`, which measures nothing and costs nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict

import torch

# The evaluation path's stages, in the order data flows through them.
STAGES = ("data loading", "backbone", "search", "label gather", "soft labels", "upsample", "argmax",
          "metric update")


class StageTimer:
    """Accumulates seconds per named stage."""

    def __init__(self, device: str | torch.device | None = None):
        self.sync = device is not None and torch.device(device).type == "cuda"
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, stage: str):
        if self.sync:
            torch.cuda.synchronize()
        started = time.perf_counter()
        try:
            yield
        finally:
            if self.sync:
                torch.cuda.synchronize()
            self.seconds[stage] += time.perf_counter() - started

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds

    def total(self) -> float:
        return sum(self.seconds.values())

    def per_image(self, images: int) -> dict[str, float]:
        """Seconds per image of every stage (known stages first, in data-flow order)."""
        order = [s for s in STAGES if s in self.seconds] + [s for s in self.seconds if s not in STAGES]
        return {s: self.seconds[s] / images for s in order}


class _NoTimer:
    def __call__(self, stage: str) -> contextlib.nullcontext:
        return contextlib.nullcontext()

    def add(self, stage: str, seconds: float) -> None:
        pass


NO_TIMER = _NoTimer()
