"""Dense FUNGI features: L2-normalised patch tokens concatenated with L2-normalised random
projections of per-patch self-supervised gradients (Simoncini et al., NeurIPS 2024)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from fungi_dense.gradients import resolve_layer, tokens_and_layer_grads
from fungi_dense.objectives import OBJECTIVES, infonce_loss, kl_uniform_loss
from fungi_dense.projection import PROJECTIONS
from fungi_dense.support import SupportMemory
from fungi_dense.variants import DEFAULT_VARIANT, LEGACY_VARIANT, get_variant
from hummingbird.errors import ConfigError, option
from hummingbird.models.backbones import PatchEncoder


@dataclass(frozen=True)
class FungiConfig:
    """Everything that fixes a FUNGI feature (recorded in bank metadata).

    Attributes:
        objectives: any of ``"infonce"`` and ``"kl"``; one gradient block each, in this order.
        layer: the differentiated linear layer (default: last block's attention output projection).
        latent_dim: output size of the seeded random projection head applied to tokens.
        head_seed: seed of that head.
        negatives: InfoNCE negatives per token (nearest support patches).
        temperature: InfoNCE temperature.
        projection: ``"dense"`` (the paper's ±1 matrix) or ``"fast"`` (Khatri-Rao).
        projection_dim: size of each projected gradient block (``None``: the embedding size).
        projection_seed: seed of the projection.
        token_weight, gradient_weight: scales of the normalised parts before the final normalisation.
        pca_dim: if set, PCA of the concatenated feature to this size (fitted with
            :func:`fit_pca`, stored in the support file).
        objective_variant: the form of the InfoNCE objective, a key of
            :data:`fungi_dense.variants.VARIANTS` (head, class token, τ placement, negatives).
        negatives_seed: seed of the variants' random negative subsampling (combined with a hash of
            each image's pixels, so an image's features never depend on its batch or loader order).
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
    objective_variant: str = DEFAULT_VARIANT
    negatives_seed: int = 0

    def __post_init__(self):
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown or not self.objectives:
            raise ConfigError(f"{option('fungi_objectives', list(self.objectives))}: choose from {', '.join(OBJECTIVES)}")
        if self.projection not in PROJECTIONS:
            raise ConfigError(f"{option('fungi_projection', self.projection)}: choose from {', '.join(PROJECTIONS)}")
        variant = get_variant(self.objective_variant)
        if variant.fetched is not None and self.negatives > variant.fetched:
            raise ConfigError(f"{option('fungi_negatives', self.negatives)}: the {variant.name} objective fetches "
                              f"{variant.fetched} neighbours per token, so at most {variant.fetched}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["objectives"] = list(self.objectives)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FungiConfig":
        """A recorded config; one written before objective variants existed means the legacy
        ``patchwise`` objective it was built with."""
        return cls(**{"objective_variant": LEGACY_VARIANT, **d, "objectives": tuple(d["objectives"])})


def config_from_metadata(meta: dict) -> FungiConfig:
    """The :class:`FungiConfig` of a FUNGI bank's metadata. The record is brought up to the current
    fields in place (an old bank's missing variant and seeds filled with what it was built with), so
    that the bank's compatibility check compares like with like."""
    config = FungiConfig.from_dict(meta["fungi"])
    meta["fungi"] = config.to_dict()
    return config


def random_head(kind: str, latent_dim: int, embed_dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The seeded random head: weight ``(L, D)`` and bias ``(L,)`` or ``None``.

    ``"gaussian"``: ``N(0, 1/D)`` weights, no bias. ``"linear"``: ``torch.nn.Linear(D, L)``'s default
    initialisation, weights and bias uniform in ``±1/√D``.
    """
    g = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        return torch.randn(latent_dim, embed_dim, generator=g) / embed_dim**0.5, None
    bound = 1 / embed_dim**0.5
    weight = (torch.rand(latent_dim, embed_dim, generator=g) * 2 - 1) * bound
    return weight, (torch.rand(latent_dim, generator=g) * 2 - 1) * bound


def image_seeds(images: torch.Tensor, seed: int) -> list[int]:
    """One seed per image of ``(B, 3, H, W)`` from ``seed`` and a hash of the image's float32 pixels."""
    pixels = images.detach().to("cpu", torch.float32).contiguous().numpy()
    key = str(seed).encode()
    return [int.from_bytes(hashlib.blake2b(p.tobytes(), digest_size=8, key=key).digest(), "little") >> 1
            for p in pixels]


def keep_masks(seeds: list[int], count: int, fraction: float) -> torch.Tensor:
    """``(B, count)`` bool: each of ``count`` rows kept with probability ``fraction``, one generator per image."""
    return torch.stack([torch.rand(count, generator=torch.Generator().manual_seed(s)) < fraction for s in seeds])


def scramble_neighbour_rows(rows: torch.Tensor) -> torch.Tensor:
    """The dense reference's reshape bug, reproduced: each token's ``K`` fetched neighbours ``(K, D)``
    are read in memory order as a ``(D, K)`` matrix and transposed, so row ``n`` holds elements
    ``n, n+K, n+2K, …`` of the ``K`` neighbours laid end to end. ``(B, T, K, D)`` → ``(B, T, K, D)``."""
    b, t, k, d = rows.shape
    return rearrange(rows.reshape(b, t, k * d), "b t (d k) -> b t k d", k=k)


class FungiFeatures:
    """Feature source: images ``(B, 3, H, W)`` → dense FUNGI features ``(B, h, w, F)``, unit norm.

    ``F = D + len(objectives) · projection_dim`` (or ``pca_dim``). Each image's features depend only on
    that image (and the fixed support memory), never on the rest of the batch.
    """

    kind = "fungi"

    def __init__(self, encoder: PatchEncoder, support: SupportMemory | None, config: FungiConfig = FungiConfig()):
        if "infonce" in config.objectives and support is None:
            raise ConfigError(f"the infonce objective needs a support memory ({option('fungi_support')})")
        self.encoder, self.support, self.config = encoder, support, config
        self.variant = get_variant(config.objective_variant)
        if self.uses_class_token and encoder.num_prefix_tokens == 0:
            raise ConfigError(f"the {self.variant.name} objective uses the class token, which {encoder.name} does not "
                              f"have; use {option('fungi_objective_variant', 'patchwise')}")
        self.layer = resolve_layer(encoder, config.layer)
        d = encoder.embed_dim
        self.head_weight, self.head_bias = random_head(self.variant.head, config.latent_dim, d, config.head_seed)
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

    @property
    def uses_class_token(self) -> bool:
        return self.variant.class_token and "infonce" in self.config.objectives

    def to(self, device) -> "FungiFeatures":
        self.encoder.to(device)
        return self

    def latents(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``(..., D)`` → head outputs ``(..., L)``."""
        out = tokens @ self.head_weight.to(tokens).T
        return out if self.head_bias is None else out + self.head_bias.to(tokens)

    def negatives(self, anchors: torch.Tensor, image_ids: list[str] | None = None,
                  seeds: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The InfoNCE negatives of anchors ``(B, T, D)`` as the variant forms them.

        Returns:
            Head outputs ``(B, T, M, L)`` (each anchor its own) or ``(B, 1, M', L)`` (pooled per image),
            and the keep mask ``(B, 1, M')`` of pooled rows (``None``: all kept).
        """
        v, count = self.variant, self.config.negatives
        queries = F.normalize(anchors.detach(), dim=-1)
        rows = self.support.negatives(queries, v.fetched or count, image_ids if v.skip_own_image else None)
        if v.scrambled:
            rows = scramble_neighbour_rows(rows)
        latents = self.latents(rows[:, :, :count])
        if not v.pooled:
            return latents, None
        b, t, m, l = latents.shape
        mask = None
        if v.keep_fraction < 1:
            if seeds is None:
                raise ConfigError(f"the {v.name} objective subsamples negatives per image: pass seeds")
            mask = keep_masks(seeds, t * m, v.keep_fraction).to(latents.device)[:, None]
        return latents.reshape(b, 1, t * m, l), mask

    def losses(self, tokens: torch.Tensor, prefix: torch.Tensor | None = None, image_ids: list[str] | None = None,
               seeds: list[int] | None = None) -> list[torch.Tensor]:
        """Patch tokens ``(B, h, w, D)`` (and prefix tokens ``(B, n, D)`` for variants that use the class
        token) → one scalar loss per objective, each a sum of per-image losses."""
        flat = rearrange(tokens, "b h w d -> b (h w) d")
        losses = []
        for objective in self.config.objectives:
            if objective == "infonce":
                anchors = torch.cat([prefix[:, :1], flat], 1) if self.variant.class_token else flat
                negatives, mask = self.negatives(anchors, image_ids, seeds)
                losses.append(infonce_loss(self.latents(anchors), negatives, self.config.temperature, mask,
                                           self.variant.temperature_on, self.variant.loss_fp16))
            else:
                losses.append(kl_uniform_loss(self.latents(flat)))
        return losses

    def gradients(self, images: torch.Tensor, image_ids: list[str] | None = None):
        """Per-patch factors of the layer gradients: tokens ``(B, h, w, D)``, layer inputs ``(B, P, D_in)``
        and, per objective, layer output gradients ``(B, P, D_out)`` (see
        :func:`~fungi_dense.gradients.tokens_and_layer_grads`)."""
        seeds = None
        if self.variant.pooled and self.variant.keep_fraction < 1 and "infonce" in self.config.objectives:
            seeds = image_seeds(images, self.config.negatives_seed)
        if self.uses_class_token:
            return tokens_and_layer_grads(self.encoder, self.layer, images,
                                          lambda t, p: self.losses(t, p, image_ids, seeds), with_prefix=True)
        return tokens_and_layer_grads(self.encoder, self.layer, images, lambda t: self.losses(t, None, image_ids, seeds))

    def raw(self, images: torch.Tensor, image_ids: list[str] | None = None) -> torch.Tensor:
        """FUNGI features before PCA: ``(B, h, w, D + n·k)``, unit norm."""
        tokens, inputs, grads = self.gradients(images, image_ids)
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
