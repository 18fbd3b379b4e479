"""Which patches of an image go into a bounded memory bank."""

from __future__ import annotations

from typing import Sequence

import torch


def per_image_uniform(count: int, seeds: Sequence[int]) -> torch.Tensor:
    """``(len(seeds), count)`` uniform numbers in ``[0, 1)``, row ``i`` drawn from ``seeds[i]`` alone."""
    return torch.stack([torch.rand(count, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


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
    noise = per_image_uniform(p, seeds)
    shuffle = torch.argsort(noise, dim=1)
    order = torch.sort(torch.gather(rarest, 1, shuffle), dim=1, stable=True).indices
    chosen = torch.gather(shuffle, 1, order)[:, :per_image]
    labelled = torch.gather(torch.isfinite(rarest), 1, chosen)
    return torch.where(labelled, chosen, torch.full_like(chosen, -1))


def class_frequency_selection(label_dists: torch.Tensor, per_image: int, seeds: Sequence[int]) -> torch.Tensor:
    """open-hummingbird-eval's bounded-memory selection: keep the ``per_image`` patches of lowest score.

    A class's frequency is the number of the image's patches that contain it; a patch's score is the sum
    of the frequencies of the classes it contains, times a uniform random number in ``[0, 1)``. Every patch
    with a label can be kept (the peer counts void pixels as background, so every patch has one).

    Args:
        label_dists: ``(B, P, C)`` per-patch class distributions.
        per_image: how many patches to keep per image.
        seeds: one seed per image for its random factors.

    Returns:
        ``(B, min(per_image, P))`` int64 patch indices into ``P``, ``-1`` where an image ran out of labelled
        patches.
    """
    present = (label_dists > 0).float()
    class_freq = present.sum(1, keepdim=True)  # (B, 1, C): patches containing each class
    score = (present * class_freq).sum(-1)  # (B, P)
    noise = per_image_uniform(score.shape[1], seeds)
    labelled = present.sum(-1) > 0
    score = torch.where(labelled, score * noise, torch.inf)
    chosen = torch.topk(score, min(per_image, score.shape[1]), dim=1, largest=False).indices
    return torch.where(torch.gather(labelled, 1, chosen), chosen, torch.full_like(chosen, -1))
