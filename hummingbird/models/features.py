"""Feature sources: what is stored in the memory bank and used as a query for each patch.

A feature source maps images ``(B, 3, H, W)`` in ``[0, 1]`` to L2-normalised patch features
``(B, H/p, W/p, D)``. ``TokenFeatures`` uses the backbone's patch tokens; dense FUNGI features
(``fungi_dense.features.FungiFeatures``) plug in through the same interface: ``patch_size``,
``dim``, ``kind``, ``to(device)``, ``__call__(images, image_ids=None)`` and ``metadata()``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hummingbird.models.backbones import PatchEncoder


class TokenFeatures:
    """Plain ViT patch tokens, L2-normalised."""

    kind = "tokens"

    def __init__(self, encoder: PatchEncoder):
        self.encoder = encoder

    @property
    def patch_size(self) -> int:
        return self.encoder.patch_size

    @property
    def dim(self) -> int:
        return self.encoder.embed_dim

    def to(self, device: torch.device | str) -> "TokenFeatures":
        self.encoder.to(device)
        return self

    def __call__(self, images: torch.Tensor, image_ids: list[str] | None = None) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` in ``[0, 1]`` → ``(B, h, w, D)`` float32, unit norm per patch.
        ``image_ids`` is accepted for interface parity with sources that use it (FUNGI)."""
        return F.normalize(self.encoder(images), dim=-1)

    def metadata(self) -> dict:
        return dict(self.encoder.metadata(), feature_kind=self.kind, feature_dim=self.dim)
