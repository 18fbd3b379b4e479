"""Self-supervised objectives whose per-patch gradients become FUNGI features.

Each objective takes one batch of latent token projections and returns a scalar that is the
*sum of per-image losses*, so an image's gradients never depend on the other images in the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hummingbird.errors import ConfigError

# The dense reference fills the self-similarity column of its raw-cosine log-sum-exp with −1e4;
# exp(−1e4) is exactly 0 in float32 and float64, so that column carries no weight.
REFERENCE_SELF_LOGIT = -1e4


def round_to_float16(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to float16 and back to its dtype; the gradient is rounded the same way."""
    return x.to(torch.float16).to(x.dtype)


def infonce_loss(latents: torch.Tensor, negatives: torch.Tensor, temperature: float = 0.07,
                 negative_mask: torch.Tensor | None = None, temperature_on: str = "all",
                 fp16: bool = False) -> torch.Tensor:
    """Dense InfoNCE: the tokens of an image are each other's positives, contrasted with negatives.

    With cosines ``s_ij`` between anchor ``i`` and the other tokens ``j ≠ i`` of its image, ``s_in`` to its
    (kept) negatives ``n`` and ``c = 1/τ`` if ``temperature_on == "all"`` else ``1``:
    ``ℓ_i = logsumexp({c·s_ij}_{j≠i} ∪ {c·s_in}_n) − mean_{j≠i} s_ij / τ``; the image's loss is ``mean_i ℓ_i``.
    ``temperature_on="positives"`` is the authors' dense reference (τ only on the positive term).

    Args:
        latents: ``(B, T, L)`` latent projections of the anchors (normalised here).
        negatives: ``(B, T, M, L)`` each anchor's own ``M`` negatives, or ``(B, 1, M, L)`` one set per
            image shared by every anchor.
        temperature: ``τ``.
        negative_mask: ``(B, T or 1, M)`` bool, the negatives that take part (``None``: all).
        temperature_on: ``"all"`` or ``"positives"``.
        fp16: round both inputs to float16 first (the reference's float16 loss features).

    Returns:
        Scalar: sum over images of each image's mean anchor loss.
    """
    if fp16:
        latents, negatives = round_to_float16(latents), round_to_float16(negatives)
    z = F.normalize(latents, dim=-1)
    n = F.normalize(negatives, dim=-1)
    t = z.shape[1]
    if t < 2:
        raise ConfigError("InfoNCE over patches needs at least 2 patches per image")
    cosine = torch.einsum("bil,bjl->bij", z, z)
    positive = cosine / temperature
    if n.shape[1] == 1:  # shared by every anchor: no (B, T, M, L) copy
        negative = torch.einsum("bil,bml->bim", z, n[:, 0])
    else:
        negative = torch.einsum("bil,biml->bim", z, n)
    self_mask = torch.eye(t, dtype=torch.bool, device=z.device)
    if temperature_on == "all":
        negative = negative / temperature
        positive_logits = positive.masked_fill(self_mask, -torch.inf)
    else:
        positive_logits = cosine.masked_fill(self_mask, REFERENCE_SELF_LOGIT)
    if negative_mask is not None:
        negative = negative.masked_fill(~negative_mask.expand_as(negative), -torch.inf)
    log_denominator = torch.logsumexp(torch.cat([positive_logits, negative], dim=-1), dim=-1)  # (B, T)
    mean_positive = positive.masked_fill(self_mask, 0).sum(-1) / (t - 1)
    return (log_denominator - mean_positive).mean(-1).sum()


def negative_mass_share(latents: torch.Tensor, negatives: torch.Tensor, temperature: float = 0.07,
                        negative_mask: torch.Tensor | None = None, temperature_on: str = "all") -> torch.Tensor:
    """Per anchor, the share of :func:`infonce_loss`'s softmax denominator held by the negatives:
    ``(B, T)`` in ``[0, 1]`` (how much the support memory can move the gradient)."""
    with torch.no_grad():
        z, n = F.normalize(latents.float(), dim=-1), F.normalize(negatives.float(), dim=-1)
        scale = 1 / temperature if temperature_on == "all" else 1.0
        positive = torch.einsum("bil,bjl->bij", z, z) * scale
        positive = positive.masked_fill(torch.eye(z.shape[1], dtype=torch.bool, device=z.device), -torch.inf)
        negative = (torch.einsum("bil,bml->bim", z, n[:, 0]) if n.shape[1] == 1
                    else torch.einsum("bil,biml->bim", z, n)) * scale
        if negative_mask is not None:
            negative = negative.masked_fill(~negative_mask.expand_as(negative), -torch.inf)
        return torch.softmax(torch.cat([positive, negative], -1), -1)[..., positive.shape[-1]:].sum(-1)


def kl_uniform_loss(latents: torch.Tensor) -> torch.Tensor:
    """Per patch, ``KL(softmax(latent) ‖ uniform)``; sum over patches and images.

    Args:
        latents: ``(B, P, L)``.
    """
    log_p = torch.log_softmax(latents, dim=-1)
    return (log_p.exp() * (log_p + math.log(latents.shape[-1]))).sum()


OBJECTIVES = ("infonce", "kl")
