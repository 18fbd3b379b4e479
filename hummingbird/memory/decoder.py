"""The Hummingbird nearest-neighbour decoder: attention over the k nearest memory patches.

The query path stays on the device of the query features: the search runs where its index lives
(torch searches on their device, faiss indexes on the CPU), label distributions are gathered where
the memory labels live, and the results come back to the features' device; when everything is on
one GPU nothing is copied to the host.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hummingbird.catalog import DEFAULT_K, DEFAULT_TEMPERATURE
from hummingbird.runtime.profiling import NO_TIMER

GATHER_BYTES = 1 << 28  # bound on the (queries, k, C) float32 block of gathered neighbour labels
UPSAMPLE_BYTES = 1 << 28  # bound on the (images, C, H, W) float32 block of upsampled distributions


def soft_labels(similarities: torch.Tensor, neighbour_labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Attention-weighted label distribution of each query.

    Args:
        similarities: ``(Q, k)`` cosine similarities to the query's neighbours.
        neighbour_labels: ``(Q, k, C)`` label distributions of those neighbours.
        temperature: softmax temperature ``τ``.

    Returns:
        ``(Q, C)``: ``Σ_j softmax(s / τ)_j · labels_j``.
    """
    weights = torch.softmax(similarities.float() / temperature, dim=-1)
    return torch.einsum("qk,qkc->qc", weights, neighbour_labels.float())


def upsample_labels(distributions: torch.Tensor, size: tuple[int, int], timer=NO_TIMER,
                    max_bytes: int = UPSAMPLE_BYTES) -> torch.Tensor:
    """Patch-grid distributions ``(B, h, w, C)`` → label maps ``(B, H, W)`` int64: bilinear upsampling
    (``align_corners=False``) of the class channels, then the per-pixel argmax (first class on ties).

    Only the classes that can win somewhere are upsampled (:func:`contending_classes`); the others
    are below another class at every pixel, so leaving them out changes no label, and an image with
    a single contender is labelled without upsampling. Channels are interpolated independently, so
    the labels are exactly those of upsampling every channel. The upsampled block is bounded by
    ``max_bytes``: an image whose contenders do not fit is upsampled a few channels at a time with a
    running maximum.
    """
    grid = distributions.permute(0, 3, 1, 2).float().contiguous()  # (B, C, h, w): the fast layout
    out = torch.empty(len(grid), *size, dtype=torch.int64, device=grid.device)
    plane = size[0] * size[1] * 4
    with timer("argmax"):
        contenders = contending_classes(distributions.float())  # (B, C) bool
    for i, classes in enumerate(contenders):
        classes = classes.nonzero(as_tuple=True)[0]  # ascending: the first class still wins ties
        if len(classes) == 1:
            out[i] = classes[0]
            continue
        step = max(1, max_bytes // plane)
        best = None
        for j in range(0, len(classes), step):
            chosen = classes[j:j + step]
            with timer("upsample"):
                up = F.interpolate(grid[i:i + 1, chosen], size=size, mode="bilinear", align_corners=False)[0]
            with timer("argmax"):
                value, index = up.max(0)  # first maximum, like argmax (and faster on the CPU)
                if best is None:
                    best, out[i] = value, chosen[index]
                else:  # strictly greater: an earlier class keeps a tie
                    better = value > best
                    best = torch.where(better, value, best)
                    out[i] = torch.where(better, chosen[index], out[i])
    return out


def contending_classes(distributions: torch.Tensor, margin: float = 1e-5) -> torch.Tensor:
    """Classes that can be the argmax of a bilinear upsampling of ``distributions (B, h, w, C)`` →
    ``(B, C)`` bool.

    Every upsampled pixel is a convex combination, with the same weights for all classes, of the
    four grid values around it (two or one at the borders). So in each window of 2 × 2 grid points,
    class ``j`` is at most ``hi_j`` (its largest value there), while the leading class is at least
    the mean of any set ``S`` of classes, hence at least ``min over the corners of Σ_S / |S|``. This
    floor is taken for every single class, the two classes of largest mean in the window (a boundary
    between two classes) and all classes. A class with ``hi_j < floor - margin`` in every window
    never wins (``margin`` covers the rounding of the interpolation).
    """
    d = F.pad(distributions.permute(0, 3, 1, 2), (0, 1, 0, 1), mode="replicate").permute(0, 2, 3, 1)
    corners = (d[:, :-1, :-1], d[:, :-1, 1:], d[:, 1:, :-1], d[:, 1:, 1:])  # windows (i, i + 1), borders too
    hi = torch.maximum(torch.maximum(corners[0], corners[1]), torch.maximum(corners[2], corners[3]))
    lo = torch.minimum(torch.minimum(corners[0], corners[1]), torch.minimum(corners[2], corners[3]))
    total = corners[0] + corners[1] + corners[2] + corners[3]
    first = total.argmax(-1, keepdim=True)
    second = total.scatter(-1, first, -torch.inf).argmax(-1, keepdim=True)
    pair = torch.stack([(v.gather(-1, first) + v.gather(-1, second))[..., 0] for v in corners]).min(0).values / 2
    everything = torch.stack([v.sum(-1) for v in corners]).min(0).values / distributions.shape[-1]
    floor = torch.maximum(torch.maximum(lo.max(-1).values, pair), everything)  # (B, h, w)
    return (hi >= (floor - margin)[..., None]).flatten(1, 2).any(1)


class HummingbirdDecoder:
    """Labels query patches from a memory bank.

    Args:
        index: search structure over the memory features: a torch search of
            :mod:`hummingbird.memory.search` (on its ``device``) or a faiss
            :class:`~hummingbird.memory.faiss_index.NeighbourIndex` (CPU); ``index.search(queries (Q, D), k)``
            returns similarities and memory rows ``(Q, k)``.
        memory_labels: ``(N, C)`` label distributions of the memory rows (a tensor, on any device, or a
            memory-mapped :class:`~hummingbird.memory.shards.RowGather`).
        k: neighbours per query patch (default 30).
        temperature: softmax temperature over cosine similarities (default 0.02).
        chunk: queries whose neighbour labels are gathered at once (default: as many as fit in
            :data:`GATHER_BYTES`, a whole batch at usual sizes).
        timer: a :class:`~hummingbird.runtime.profiling.StageTimer` charged with the search, label gather, soft
            labels, upsample and argmax stages (default: none).
    """

    def __init__(self, index, memory_labels, k: int = DEFAULT_K, temperature: float = DEFAULT_TEMPERATURE,
                 chunk: int | None = None, timer=NO_TIMER):
        self.index, self.memory_labels = index, memory_labels
        self.k, self.temperature, self.chunk = k, temperature, chunk
        self.timer = timer
        self.device = getattr(index, "device", torch.device("cpu"))
        self.labels_device = getattr(memory_labels, "device", torch.device("cpu"))

    def neighbours(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Query features ``(B, h, w, D)`` → similarities and memory rows of the ``k`` nearest memory
        patches, both ``(B, h, w, k)``, on the features' device."""
        b, h, w, d = features.shape
        with self.timer("search"):
            sims, ids = self.index.search(features.reshape(-1, d).to(self.device), self.k)
            sims, ids = sims.to(features.device), ids.to(features.device)
        return sims.view(b, h, w, self.k), ids.view(b, h, w, self.k)

    def distributions_from(self, similarities: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Neighbours ``(B, h, w, k)`` (from :meth:`neighbours`) → label distributions ``(B, h, w, C)``,
        on the neighbours' device."""
        b, h, w, k = rows.shape
        sims, ids = similarities.reshape(-1, k), rows.reshape(-1, k)
        classes = self.memory_labels.shape[1]
        out = torch.empty(len(ids), classes, device=rows.device)
        chunk = self.chunk or max(1, GATHER_BYTES // (k * classes * 4))
        for start in range(0, len(ids), chunk):
            sl = slice(start, start + chunk)
            with self.timer("label gather"):
                neighbour_labels = self.memory_labels[ids[sl].to(self.labels_device)].to(rows.device)
            with self.timer("soft labels"):
                out[sl] = soft_labels(sims[sl], neighbour_labels, self.temperature)
        return out.view(b, h, w, classes)

    def patch_distributions(self, features: torch.Tensor) -> torch.Tensor:
        """Query features ``(B, h, w, D)`` → label distributions ``(B, h, w, C)`` on the patch grid."""
        return self.distributions_from(*self.neighbours(features))

    @staticmethod
    def upsample(distributions: torch.Tensor, size: tuple[int, int], timer=NO_TIMER) -> torch.Tensor:
        """Patch-grid distributions ``(B, h, w, C)`` → per-pixel label map ``(B, H, W)`` int64 by bilinear
        upsampling and argmax (see :func:`upsample_labels`), on the distributions' device."""
        return upsample_labels(distributions, size, timer)

    def predict(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Query features ``(B, h, w, D)`` → label maps ``(B, H, W)`` int64 at ``size = (H, W)``, on the
        features' device."""
        return upsample_labels(self.patch_distributions(features), size, self.timer)
