"""Which patches of an image go into a bounded memory bank."""

from __future__ import annotations

from typing import Sequence

import torch


def class_balanced_selection(label_dists: torch.Tensor, per_image: int, seeds: Sequence[int]) -> torch.Tensor:
    """Pick ``per_image`` patches of each image, patches with the image's rarer classes first.

    A patch's priority is the frequency (share of the image's labelled pixels) of the rarest class
    it contains; lower goes first, ties are broken at random. Patches whose pixels are all ignored
    are never picked, so an image with fewer labelled patches contributes fewer.

    Args:
        label_dists: ``(B, P, C)`` per-patch class distributions of ``B`` images.
        per_image: how many patches to keep per image.
        seeds: one seed per image for its random tie-break, so an image's selection does not depend on
            the batch or process it was encoded in.

    Returns:
        ``(B, per_image)`` int64 patch indices into ``P``, ``-1`` where an image ran out of
        labelled patches.
    """
    b, p, _ = label_dists.shape
    present = label_dists > 0
    class_mass = label_dists.sum(1, keepdim=True)  # (B, 1, C)
    class_freq = class_mass / class_mass.sum(-1, keepdim=True).clamp_min(1e-12)
    rarest = torch.where(present, class_freq.expand_as(label_dists), torch.inf).amin(-1)  # (B, P)
    # random tie-break: shuffle, then stable sort by priority
    noise = torch.stack([torch.rand(p, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
    shuffle = torch.argsort(noise, dim=1)
    order = torch.sort(torch.gather(rarest, 1, shuffle), dim=1, stable=True).indices
    chosen = torch.gather(shuffle, 1, order)[:, :per_image]
    labelled = torch.gather(torch.isfinite(rarest), 1, chosen)
    return torch.where(labelled, chosen, torch.full_like(chosen, -1))
