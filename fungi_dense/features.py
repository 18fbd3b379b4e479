"""Dense FUNGI features: L2-normalised patch tokens concatenated with L2-normalised random
projections of per-patch self-supervised gradients (Simoncini et al., NeurIPS 2024)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from fungi_dense.gradients import resolve_layer, tokens_and_layer_grads
from fungi_dense.objectives import OBJECTIVES, infonce_loss, kl_uniform_loss
from fungi_dense.projection import PROJECTIONS
from fungi_dense.support import SupportMemory
from hummingbird.backbones import PatchEncoder
from hummingbird.errors import ConfigError


@dataclass(frozen=True)
class FungiConfig:
    """Everything that fixes a FUNGI feature (recorded in bank metadata).

    Attributes:
        objectives: any of ``"infonce"`` and ``"kl"``; one gradient block each, in this order.
        layer: the differentiated linear layer (default: last block's attention output projection).
        latent_dim: output size of the seeded random projection head applied to tokens.
        head_seed: seed of that head.
        negatives: InfoNCE negatives per patch (nearest support patches of other images).
        temperature: InfoNCE temperature.
        projection: ``"dense"`` (the paper's ±1 matrix) or ``"fast"`` (Khatri-Rao).
        projection_dim: size of each projected gradient block (``None``: the embedding size).
        projection_seed: seed of the projection.
        token_weight, gradient_weight: scales of the normalised parts before the final normalisation.
        pca_dim: if set, PCA of the concatenated feature to this size (fitted with
            :func:`fit_pca`, stored in the support file).
    """

    objectives: tuple[str, ...] = ("infonce",)
    layer: str = "blocks.-1.attn.proj"
    latent_dim: int = 96
    head_seed: int = 0
    negatives: int = 2
    temperature: float = 0.07
    projection: str = "fast"
    projection_dim: int | None = None
    projection_seed: int = 0
    token_weight: float = 1.0
    gradient_weight: float = 1.0
    pca_dim: int | None = None

    def __post_init__(self):
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown or not self.objectives:
            raise ConfigError(f"--fungi-objectives {list(self.objectives)}: choose from {', '.join(OBJECTIVES)}")
        if self.projection not in PROJECTIONS:
            raise ConfigError(f"--fungi-projection {self.projection!r}: choose from {', '.join(PROJECTIONS)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["objectives"] = list(self.objectives)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FungiConfig":
        return cls(**{**d, "objectives": tuple(d["objectives"])})


class FungiFeatures:
    """Feature source: images ``(B, 3, H, W)`` → dense FUNGI features ``(B, h, w, F)``, unit norm.

    ``F = D + len(objectives) · projection_dim`` (or ``pca_dim``). Each image's features depend only on
    that image (and the fixed support memory), never on the rest of the batch.
    """

    kind = "fungi"

    def __init__(self, encoder: PatchEncoder, support: SupportMemory | None, config: FungiConfig = FungiConfig()):
        if "infonce" in config.objectives and support is None:
            raise ConfigError("the infonce objective needs a support memory (--fungi-support)")
        self.encoder, self.support, self.config = encoder, support, config
        self.layer = resolve_layer(encoder, config.layer)
        d = encoder.embed_dim
        head = torch.Generator().manual_seed(config.head_seed)
        self.head = torch.randn(config.latent_dim, d, generator=head) / d**0.5  # (L, D)
        k = config.projection_dim or d
        self.projections = [PROJECTIONS[config.projection](self.layer.out_features, self.layer.in_features, k,
                                                           seed=config.projection_seed + 1000 * i)
                            for i in range(len(config.objectives))]
        self.projection_dim = k

    @property
    def patch_size(self) -> int:
        return self.encoder.patch_size

    @property
    def dim(self) -> int:
        return self.config.pca_dim or self.encoder.embed_dim + len(self.config.objectives) * self.projection_dim

    def to(self, device) -> "FungiFeatures":
        self.encoder.to(device)
        return self

    def _losses(self, tokens: torch.Tensor, image_ids: list[str] | None) -> list[torch.Tensor]:
        flat = rearrange(tokens, "b h w d -> b (h w) d")
        head = self.head.to(flat.device)
        latents = flat @ head.T
        losses = []
        for objective in self.config.objectives:
            if objective == "infonce":
                negatives = self.support.negatives(F.normalize(flat.detach(), dim=-1), self.config.negatives, image_ids)
                losses.append(infonce_loss(latents, negatives @ head.T, self.config.temperature))
            else:
                losses.append(kl_uniform_loss(latents))
        return losses

    def raw(self, images: torch.Tensor, image_ids: list[str] | None = None) -> torch.Tensor:
        """FUNGI features before PCA: ``(B, h, w, D + n·k)``, unit norm."""
        tokens, inputs, grads = tokens_and_layer_grads(self.encoder, self.layer, images,
                                                       lambda t: self._losses(t, image_ids))
        b, h, w, d = tokens.shape
        parts = [self.config.token_weight * F.normalize(tokens, dim=-1)]
        a = inputs.reshape(b * h * w, -1)
        for g, projection in zip(grads, self.projections):
            projected = projection(g.reshape(b * h * w, -1), a).reshape(b, h, w, -1)
            parts.append(self.config.gradient_weight * F.normalize(projected, dim=-1))
        return F.normalize(torch.cat(parts, dim=-1), dim=-1)

    def __call__(self, images: torch.Tensor, image_ids: list[str] | None = None) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` in ``[0, 1]`` → ``(B, h, w, F)`` float32, unit norm per patch."""
        features = self.raw(images, image_ids)
        if self.config.pca_dim:
            if not self.support or "components" not in self.support.pca:
                raise ConfigError("pca_dim is set but the support memory holds no PCA (run fit_pca)")
            mean, components = (self.support.pca[k].to(features.device) for k in ("mean", "components"))
            features = F.normalize((features - mean) @ components.T, dim=-1)
        return features

    def metadata(self) -> dict:
        meta = dict(self.encoder.metadata(), feature_kind=self.kind, feature_dim=self.dim,
                    fungi=self.config.to_dict())
        if self.support is not None:
            meta["fungi_support"] = {"path": str(self.support.path) if self.support.path else None,
                                     "sha256": self.support.sha256, "patches": len(self.support)}
        return meta


@torch.no_grad()
def fit_pca(features: FungiFeatures, images: torch.Tensor, image_ids: list[str] | None = None) -> None:
    """Fit the PCA of ``features.config.pca_dim`` components on the FUNGI features of ``images``
    ``(B, 3, H, W)`` and store it in the support memory (save the support afterwards)."""
    dim = features.config.pca_dim
    sample = features.raw(images, image_ids).reshape(-1, features.encoder.embed_dim
                                                      + len(features.config.objectives) * features.projection_dim)
    if dim is None or dim > min(sample.shape):
        raise ConfigError(f"pca_dim {dim} needs at least that many sample patches ({sample.shape[0]})")
    mean = sample.mean(0)
    _, _, v = torch.linalg.svd(sample - mean, full_matrices=False)
    features.support.pca = {"mean": mean, "components": v[:dim].contiguous()}
