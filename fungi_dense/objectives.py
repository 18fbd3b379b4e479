"""Self-supervised objectives whose per-patch gradients become FUNGI features.

Each objective takes one batch of latent patch projections and returns a scalar that is the
*sum of per-image losses*, so an image's gradients never depend on the other images in the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hummingbird.errors import ConfigError


def infonce_loss(latents: torch.Tensor, negatives: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Dense InfoNCE: the patches of an image are each other's positives; each patch has its own
    negatives (nearest support-memory patches).

    For anchor ``i`` of image ``b`` with cosine similarities ``s_ij / τ`` to the other patches ``j ≠ i``
    and ``s_in / τ`` to its negatives ``n``:
    ``ℓ_i = logsumexp({s_ij}_{j≠i} ∪ {s_in}_n) − mean_{j≠i} s_ij``; the image's loss is ``mean_i ℓ_i``.

    Args:
        latents: ``(B, P, L)`` latent patch projections (normalised here).
        negatives: ``(B, P, M, L)`` latent projections of each patch's ``M`` negatives.
        temperature: ``τ``.

    Returns:
        Scalar: sum over images of each image's mean patch loss.
    """
    z = F.normalize(latents, dim=-1)
    n = F.normalize(negatives, dim=-1)
    p = z.shape[1]
    if p < 2:
        raise ConfigError("InfoNCE over patches needs at least 2 patches per image")
    positive = torch.einsum("bil,bjl->bij", z, z) / temperature
    negative = torch.einsum("bil,biml->bim", z, n) / temperature
    self_mask = torch.eye(p, dtype=torch.bool, device=z.device)
    positive_masked = positive.masked_fill(self_mask, -torch.inf)
    log_denominator = torch.logsumexp(torch.cat([positive_masked, negative], dim=-1), dim=-1)  # (B, P)
    mean_positive = positive.masked_fill(self_mask, 0).sum(-1) / (p - 1)
    return (log_denominator - mean_positive).mean(-1).sum()


def kl_uniform_loss(latents: torch.Tensor) -> torch.Tensor:
    """Per patch, ``KL(softmax(latent) ‖ uniform)``; sum over patches and images.

    Args:
        latents: ``(B, P, L)``.
    """
    log_p = torch.log_softmax(latents, dim=-1)
    return (log_p.exp() * (log_p + math.log(latents.shape[-1]))).sum()


OBJECTIVES = ("infonce", "kl")
