"""Meta's official DINOv3 checkpoints on timm's ``Eva`` models, as the official code runs them.

Measured against the official code's outputs (``../shared/peers/dinov3-official/``, README "DINOv3
loading rules"), timm's port equals the official model exactly only when

1. the ``*_qkvb`` timm models are used and ``qkv.bias × qkv.bias_mask`` is loaded into their q and v biases
   (timm's own filter drops ``qkv.bias`` silently when the model has none; the k third is dropped: a key
   bias adds the same ``q · b_k`` to every logit of a query, which softmax ignores);
2. the RoPE periods are the checkpoint's ``rope_embed.periods`` (Meta's files hold them rounded to
   bfloat16; timm recomputes them in float32);
3. the model runs in eval mode (:class:`~hummingbird.models.backbones.PatchEncoder` ensures it);

with the keys renamed: ``storage_tokens`` → ``reg_token``, ``ls1/ls2.gamma`` → ``gamma_1/gamma_2``, SwiGLU
``mlp.w1/w2/w3`` → ``mlp.fc1_g/fc1_x/fc2``; ``mask_token`` (training only) dropped.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from hummingbird.errors import CheckpointError

PERIODS_KEY = "rope_embed.periods"
# Training-time parts of official files that never touch the backbone's output: the 7B's norm of local-crop
# class tokens and EUPE's distillation projectors.
TRAINING_ONLY_PREFIXES = ("local_cls_norm.", "projectors.")
_RENAMES = (("ls1.gamma", "gamma_1"), ("ls2.gamma", "gamma_2"), ("mlp.w1.", "mlp.fc1_g."), ("mlp.w2.", "mlp.fc1_x."),
            ("mlp.w3.", "mlp.fc2."))


def is_official_dinov3(state: dict[str, torch.Tensor]) -> bool:
    """Whether a state dict is laid out like Meta's DINOv3 releases (storage tokens, RoPE periods or
    masked qkv biases)."""
    return "storage_tokens" in state or PERIODS_KEY in state or any(k.endswith("qkv.bias_mask") for k in state)


def use_official_rope_periods(model: nn.Module, periods: torch.Tensor | None = None) -> None:
    """Set the RoPE periods of a timm DINOv3 ``Eva`` to ``periods`` (a checkpoint's), else to timm's
    float32 formula values rounded to bfloat16, as Meta's checkpoints hold them; refresh timm's cache."""
    rope = model.rope
    values = rope.periods.to(torch.bfloat16) if periods is None else periods
    if values.shape != rope.periods.shape:
        raise CheckpointError(f"{PERIODS_KEY} has shape {tuple(values.shape)}, the model's RoPE has "
                              f"{tuple(rope.periods.shape)}")
    with torch.no_grad():
        rope.periods.copy_(values.to(rope.periods.dtype))
        if getattr(rope, "pos_embed_cached", None) is not None and rope.feat_shape is not None:
            rope.pos_embed_cached.copy_(rope.get_embed(shape=list(rope.feat_shape)).to(rope.pos_embed_cached.dtype))


def official_to_timm(state: dict[str, torch.Tensor], model: nn.Module,
                     path: str | Path) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """An official DINOv3 state dict → ``(timm Eva state dict, RoPE periods or None)``.

    Raises :class:`CheckpointError` when q/v biases are non-zero and the model has none (a non-``_qkvb``
    timm model), or a ``qkv.bias_mask`` comes without its bias. Keys this map does not know are passed
    through unchanged, so the caller's strict key check names them.
    """
    own = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    dropped_biases = []
    for key, value in state.items():
        if key in ("mask_token", PERIODS_KEY) or key.startswith(TRAINING_ONLY_PREFIXES):
            continue
        if key.endswith("qkv.bias_mask"):
            if key[: -len("_mask")] not in state:
                raise CheckpointError(f"{path}: {key} without {key[:-len('_mask')]}")
            continue
        if key.endswith("qkv.bias"):
            mask = state.get(key + "_mask")
            q, _, v = (value if mask is None else value * mask).chunk(3, dim=-1)
            q_key, v_key = key.replace("qkv.bias", "q_bias"), key.replace("qkv.bias", "v_bias")
            if q_key in own:
                out[q_key], out[v_key] = q, v
            elif q.any() or v.any():
                dropped_biases.append(key)
            continue
        for old, new in _RENAMES:
            key = key.replace(old, new)
        out["reg_token" if key == "storage_tokens" else key] = value
    if dropped_biases:
        raise CheckpointError(f"{path}: non-zero q/v biases in {', '.join(dropped_biases[:3])}"
                              f"{', ...' if len(dropped_biases) > 3 else ''} but this timm model has no q/v biases "
                              f"(use a *_dinov3_qkvb model)")
    periods = state.get(PERIODS_KEY)
    return out, (None if periods is None else periods.float())
