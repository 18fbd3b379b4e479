"""The memory of label propagation: a video's context frames, attended to inside a spatial window.

A context frame is a patch grid of unit-norm features ``(h, w, D)`` with targets of kind ``objects``
(:mod:`hummingbird.memory.targets`: a distribution over the video's object ids per patch). A query patch
``(i, j)`` may attend only to context patches ``(i', j')`` with ``|i - i'| ≤ r`` and ``|j - j'| ≤ r`` in every
context frame; of those, the ``k`` most similar over all frames together answer (those tied with the k-th
on DINO's affinity ``exp(s / τ)`` kept too), weighted by the shared decoder's attention
:func:`hummingbird.memory.decoder.soft_labels` — ``softmax(s / τ)`` over the chosen rows, which is DINO's
``exp(s / τ) / Σ exp(s / τ)``. So the decoder is the same as for an image memory; only the choice of rows
differs (a window and a joint top-k instead of a global k-nearest search).

:class:`ContextMemory` computes this without the full ``(frames, h·w, h·w)`` similarity block: queries go
in tiles of a few rows × some columns, each against the strip of context patches its window can reach.
Each frame's features and targets are laid out once, when it enters the memory, as contiguous column
strips (one per column tile), so a tile's sources are a contiguous row range of a strip: no copy, one
batched matrix product per tile. :func:`dense_attention` is the plain dense computation (DINO's
arrangement), kept as the reference the tiles are tested against.
"""

from __future__ import annotations

import torch

from hummingbird.memory.decoder import soft_labels

SLACK = 3  # candidates beyond k per query, to see ties with the k-th without a second search


def window_mask(h: int, w: int, radius: int, device=None) -> torch.Tensor:
    """``(h·w, h·w)`` bool: source patch within ``radius`` patches (both axes) of the query patch."""
    rows = torch.arange(h, device=device).repeat_interleave(w)
    cols = torch.arange(w, device=device).repeat(h)
    return ((rows[:, None] - rows[None]).abs() <= radius) & ((cols[:, None] - cols[None]).abs() <= radius)


def dense_attention(query: torch.Tensor, context: torch.Tensor, targets: torch.Tensor, window: torch.Tensor,
                    topk: int, temperature: float) -> torch.Tensor:
    """The reference: query ``(Q, D)``, context ``(N, S, D)`` (unit norm), targets ``(N, S, C)``, window
    ``(Q, S)`` bool → ``(Q, C)``, with DINO's dense affinity ``exp(s / τ)·window``, its top-k over all
    ``N·S`` entries (ties kept) and normalisation."""
    n, s, _ = context.shape
    aff = torch.exp(torch.matmul(query, context.transpose(1, 2)) / temperature) * window  # (N, Q, S)
    flat = aff.permute(1, 0, 2).reshape(len(query), n * s)
    threshold = flat.topk(min(topk, n * s), dim=1).values[:, -1:]
    flat = torch.where(flat < threshold, 0.0, flat)
    flat = flat / flat.sum(1, keepdim=True)
    return flat @ targets.reshape(n * s, -1)


class ContextMemory:
    """The context frames of one video (the first frame in slot 0, then a ring of the last ``capacity - 1``
    frames) and the windowed attention of a query frame over them.

    Args:
        grid: ``(h, w)`` patch grid of every frame.
        dim: feature width; ``channels``: target width (object ids incl. background).
        capacity: frames kept (first + ``n_last_frames``); radius, topk, temperature: the attention.
        band_rows, tile_cols: query tile (rows × columns).
    """

    def __init__(self, grid: tuple[int, int], dim: int, channels: int, capacity: int, radius: int, topk: int,
                 temperature: float, device=None, band_rows: int = 6, tile_cols: int = 20):
        self.h, self.w = grid
        self.radius, self.topk, self.temperature = radius, topk, temperature
        self.capacity, self.count, self.next = capacity, 0, 1
        h, w, r = self.h, self.w, radius
        self.bands = [(a, min(h, a + band_rows)) for a in range(0, h, band_rows)]
        self.tiles = [(a, min(w, a + tile_cols)) for a in range(0, w, tile_cols)]
        self.strips = [(max(0, a - r), min(w, b + r)) for a, b in self.tiles]
        self.features = [torch.zeros(capacity, h, b - a, dim, device=device) for a, b in self.strips]
        self.targets = [torch.zeros(capacity, h, b - a, channels, device=device) for a, b in self.strips]
        self._masks: dict[tuple[int, int], torch.Tensor] = {}

    def __len__(self) -> int:
        return self.count

    def add(self, features: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a frame: unit-norm features ``(h, w, D)`` and targets ``(h, w, C)``. The first frame added
        stays; later ones replace the oldest non-first frame once the memory is full."""
        if self.count == 0:
            slot = 0
        else:
            slot = self.next
            self.next = 1 + self.next % (self.capacity - 1) if self.capacity > 1 else 0
        for (a, b), feats, targs in zip(self.strips, self.features, self.targets):
            feats[slot] = features[:, a:b]
            targs[slot] = targets[:, a:b]
        self.count = min(self.capacity, self.count + 1)

    def _mask(self, band: int, tile: int) -> torch.Tensor:
        """``(Qt, S)`` bool: the window of the tile's queries over its source rectangle."""
        key = (band, tile)
        if key not in self._masks:
            (r0, r1), (c0, c1), (s0, s1) = self.bands[band], self.tiles[tile], self.strips[tile]
            lo, hi = max(0, r0 - self.radius), min(self.h, r1 + self.radius)
            qi = torch.arange(r0, r1).repeat_interleave(c1 - c0)
            qj = torch.arange(c0, c1).repeat(r1 - r0)
            si = torch.arange(lo, hi).repeat_interleave(s1 - s0)
            sj = torch.arange(s0, s1).repeat(hi - lo)
            mask = ((qi[:, None] - si[None]).abs() <= self.radius) & ((qj[:, None] - sj[None]).abs() <= self.radius)
            self._masks[key] = mask.to(self.features[0].device)
        return self._masks[key]

    def attend(self, query: torch.Tensor) -> torch.Tensor:
        """Query features ``(h, w, D)`` (unit norm) → soft targets ``(h, w, C)`` over the memory's frames."""
        if self.count == 0:
            raise ValueError("the context memory is empty")
        n = self.count
        out = torch.empty(self.h, self.w, self.targets[0].shape[-1], device=query.device)
        for bi, (r0, r1) in enumerate(self.bands):
            lo, hi = max(0, r0 - self.radius), min(self.h, r1 + self.radius)
            for ti, (c0, c1) in enumerate(self.tiles):
                q = query[r0:r1, c0:c1].reshape(-1, query.shape[-1])
                src = self.features[ti][:n, lo:hi].reshape(n, -1, query.shape[-1])  # a view: no copy
                sims = torch.matmul(q, src.transpose(1, 2)).masked_fill_(~self._mask(bi, ti), -torch.inf)
                targets = self.targets[ti][:n, lo:hi].reshape(n * src.shape[1], -1)
                out[r0:r1, c0:c1] = self._answer(sims, targets).view(r1 - r0, c1 - c0, -1)
        return out

    def _answer(self, sims: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Similarities ``(N, Qt, S)`` (−inf outside the window) → ``(Qt, C)``: joint top-k over frames, ties
        on ``exp(s / τ)`` with the k-th kept, softmax-weighted targets."""
        n, queries, s = sims.shape
        k, tau = min(self.topk, n * s), self.temperature
        width, take = min(s, self.topk + SLACK), k + SLACK
        while True:
            values, rows = sims.topk(width, dim=2)  # per frame (N, Qt, width)
            joint = values.permute(1, 0, 2).reshape(queries, n * width)
            count = n * width if take is None else min(n * width, take)
            best, pick = joint.topk(count, dim=1)
            aff = torch.exp(best / tau)  # DINO ranks and thresholds its affinity exp(s / τ), not s
            threshold = aff[:, k - 1:k]
            kept = aff >= threshold
            if width == s and count == n * width:
                break
            # a tie with the k-th may continue past the candidates looked at: then look at everything (rare)
            past_joint = kept[:, -1] & (count < n * width)
            past_frame = (torch.exp(values[..., -1] / tau).T >= threshold).any(1) & (width < s)
            if not bool(((past_joint | past_frame) & (threshold[:, 0] > 0)).any()):
                break
            width, take = s, None
        frame = pick // width
        source = rows.permute(1, 0, 2).reshape(queries, n * width).gather(1, pick)
        chosen = best.masked_fill(~kept, -torch.inf)
        return soft_labels(chosen, targets[frame * s + source], tau)
