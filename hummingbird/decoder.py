"""The Hummingbird nearest-neighbour decoder: attention over the k nearest memory patches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from hummingbird.index import NeighbourIndex


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


class HummingbirdDecoder:
    """Labels query patches from a memory bank.

    Args:
        index: search structure over the memory features.
        memory_labels: ``(N, C)`` label distributions of the memory rows.
        k: neighbours per query patch (default 30).
        temperature: softmax temperature over cosine similarities (default 0.02).
    """

    def __init__(self, index: NeighbourIndex, memory_labels: torch.Tensor, k: int = 30,
                 temperature: float = 0.02, chunk: int = 16_384):
        self.index, self.memory_labels = index, memory_labels
        self.k, self.temperature, self.chunk = k, temperature, chunk

    def neighbours(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Query features ``(B, h, w, D)`` → similarities and memory rows of the ``k`` nearest memory
        patches, both ``(B, h, w, k)``."""
        b, h, w, _ = features.shape
        sims, ids = self.index.search(rearrange(features, "b h w d -> (b h w) d"), self.k)
        return sims.view(b, h, w, self.k), ids.view(b, h, w, self.k)

    def distributions_from(self, similarities: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Neighbours ``(B, h, w, k)`` (from :meth:`neighbours`) → label distributions ``(B, h, w, C)``."""
        b, h, w, k = rows.shape
        sims, ids = similarities.reshape(-1, k), rows.reshape(-1, k)
        out = torch.empty(len(ids), self.memory_labels.shape[1])
        for start in range(0, len(ids), self.chunk):  # bounds the (chunk, k, C) gather
            sl = slice(start, start + self.chunk)
            out[sl] = soft_labels(sims[sl], self.memory_labels[ids[sl]], self.temperature)
        return out.view(b, h, w, -1)

    def patch_distributions(self, features: torch.Tensor) -> torch.Tensor:
        """Query features ``(B, h, w, D)`` → label distributions ``(B, h, w, C)`` on the patch grid."""
        return self.distributions_from(*self.neighbours(features))

    @staticmethod
    def upsample(distributions: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Patch-grid distributions ``(B, h, w, C)`` → per-pixel label map ``(B, H, W)`` int64 by bilinear
        upsampling and argmax (one image at a time to bound memory)."""
        maps = []
        for dist in distributions:
            grid = rearrange(dist, "h w c -> 1 c h w")
            maps.append(F.interpolate(grid, size=size, mode="bilinear", align_corners=False).argmax(1)[0])
        return torch.stack(maps)

    def predict(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Query features ``(B, h, w, D)`` → label maps ``(B, H, W)`` int64 at ``size = (H, W)``."""
        return self.upsample(self.patch_distributions(features), size)
