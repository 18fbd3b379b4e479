"""How a ViT's learned position embeddings are resampled to another patch grid.

Two rules, which give different features at any input size other than the native one:

* ``"official"`` — the rule of the official DINO and DINOv2 code (``interpolate_pos_encoding``, the one
  behind their published numbers): bicubic, **no antialiasing**, by ``scale_factor = ((h + 0.1) / M,
  (w + 0.1) / M)`` from the ``M × M`` grid (the 0.1 is their guard against floating-point error), so
  the sampling positions follow that scale, not ``M / h``.
* ``"timm"`` — timm's ``resample_abs_pos_embed``: bicubic to the target size, antialiased.

:func:`use_pos_embed_rule` installs a rule on a timm ``VisionTransformer``. Other families fix their own
position rule (:func:`native_position_rule`: ``rope``, ``rope+timm``, ``naflex``; see
:mod:`hummingbird.models.presets`); :func:`install_position_rule` chooses between the two cases.
"""

from __future__ import annotations

import math
import types

import torch
import torch.nn.functional as F
from timm.models.eva import Eva
from timm.models.naflexvit import NaFlexVit
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from hummingbird.catalog import POS_EMBED_RULES as RULES
from hummingbird.errors import ConfigError, option


def official_resample(grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """DINO/DINOv2's resampling of square-grid position embeddings ``(1, M·M, D)`` to ``(1, h·w, D)``.

    The grid is returned unchanged at its own size, as the official code does.
    """
    m = math.isqrt(grid.shape[1])
    if m * m != grid.shape[1]:
        raise ConfigError(f"the official DINO/DINOv2 interpolation needs a square position grid, "
                          f"got {grid.shape[1]} positions")
    if (height, width) == (m, m):
        return grid
    dim = grid.shape[-1]
    square = grid.float().reshape(1, m, m, dim).permute(0, 3, 1, 2)
    resized = F.interpolate(square, scale_factor=((height + 0.1) / m, (width + 0.1) / m), mode="bicubic",
                            antialias=False)
    return resized.permute(0, 2, 3, 1).reshape(1, height * width, dim).to(grid.dtype)


def _pos_embed_official(self: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """``VisionTransformer._pos_embed`` for patch embeddings ``x (B, h, w, D)`` with :func:`official_resample`.

    The class token's own position embedding is never resampled; register tokens get none.
    """
    b, h, w, d = x.shape
    prefix_positions = 0 if self.no_embed_class else self.num_prefix_tokens
    prefix_pos = self.pos_embed[:, :prefix_positions]
    grid_pos = official_resample(self.pos_embed[:, prefix_positions:], h, w)
    prefix = [t.expand(b, -1, -1) for t in (self.cls_token, self.reg_token) if t is not None]
    x = x.reshape(b, h * w, d)
    if self.no_embed_class:  # position embeddings cover the patches only (DINOv2 with registers in timm)
        x = torch.cat(prefix + [x + grid_pos], dim=1)
    else:
        x = torch.cat(prefix + [x], dim=1) + torch.cat([prefix_pos, grid_pos], dim=1)
    return self.pos_drop(x)


def use_pos_embed_rule(model: VisionTransformer, rule: str) -> None:
    """Make ``model`` (built with ``dynamic_img_size=True``) resample its position embeddings by ``rule``."""
    if rule not in RULES:
        raise ConfigError(f"{option('pos_embed', rule)}: choose from {', '.join(RULES)}")
    if model.pos_embed is None or not model.dynamic_img_size:
        raise ConfigError("position-embedding rules apply to ViTs with learned position embeddings built with "
                          "dynamic_img_size=True")
    model.__dict__.pop("_pos_embed", None)  # "timm": the model's own method
    if rule == "official":
        model._pos_embed = types.MethodType(_pos_embed_official, model)
    model.pos_embed_rule = rule


def native_position_rule(model: nn.Module) -> str | None:
    """The position rule a model family fixes itself, or ``None`` for a ``VisionTransformer`` whose learned
    grid is resampled by a :data:`RULES` rule.

    ``rope``: rotary embeddings only (DINOv3, EUPE); ``rope+timm``: rotary plus a learned grid that timm
    resamples (Perception Encoder); ``timm``: an Eva without rotary embeddings; ``naflex``: NaFlexVit's own
    resize of its grid (SigLIP 2 NaFlex, C-RADIO).
    """
    if isinstance(model, VisionTransformer):
        return None
    if isinstance(model, Eva):
        if model.rope is None:
            return "timm"
        return "rope+timm" if model.pos_embed is not None else "rope"
    if isinstance(model, NaFlexVit):
        return "naflex"
    raise ConfigError(f"a {type(model).__name__} is not a supported backbone (timm VisionTransformer, Eva or "
                      f"NaFlexVit)")


def install_position_rule(model: nn.Module, requested: str | None, default: str) -> str:
    """Install ``requested`` (else ``default``) on a learned-grid ViT, or check that ``requested`` is the
    model's own rule (:func:`native_position_rule`); return the rule in use (also ``model.pos_embed_rule``)."""
    native = native_position_rule(model)
    if native is None:
        use_pos_embed_rule(model, requested or default)
        return model.pos_embed_rule
    if requested not in (None, native):
        raise ConfigError(f"{option('pos_embed', requested)}: resampling rules apply to ViTs whose only position signal is a "
                          f"learned grid; this {type(model).__name__} uses {native!r} positions")
    model.pos_embed_rule = native
    return native
