"""Local checkpoint files: read them, hash them, and map their keys onto a timm ViT.

Accepted layouts: official DINO ``.pth`` (bare state dict, or a full training checkpoint with
``teacher``/``student`` entries and ``module.``/``backbone.`` prefixes), official DINOv2 ``.pth``,
official DINOv3 ``.pth`` (mapped by :mod:`hummingbird.models.dinov3`), official MAE ``.pth`` (``{"model": ...}``),
OpenAI CLIP image towers, and timm ``.safetensors``/``.pth``/``.bin``. Key conversion of other
third-party layouts is delegated to the model family's timm ``checkpoint_filter_fn``. Whatever the
layout, the mapped keys must be exactly the model's: a missing, unexpected or misshapen key is an error.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch
from timm.models import eva, naflexvit, vision_transformer
from torch import nn

from hummingbird.errors import CheckpointError
from hummingbird.models import dinov3

# Keys that belong to training heads or masking, never to the frozen feature extractor.
_IGNORED_PREFIXES = ("head.", "fc_norm.", "mask_token", "decoder", "dino_head", "ibot_head")
_WRAPPER_PREFIXES = ("module.", "backbone.", "encoder.")


# SHA-256 of checkpoints this process has read, by (path, modification time, size): a checkpoint is
# hashed from the bytes it was loaded from instead of being read a second time.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in chunks (or known from :func:`read_state_dict` reading it)."""
    known = _DIGESTS.get(_file_key(Path(path)))
    if known is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_format(path: str | Path) -> str | None:
    """``"torch"`` (zip archive or legacy pickle), ``"safetensors"`` (8-byte header length, then a JSON
    header) or ``None``, told from the file's first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save zip; pickle protocol >= 2
        return "torch"
    if len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= Path(path).stat().st_size:
        return "safetensors"
    return None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict (no key mapping yet)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        kind = checkpoint_format(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read weights file ({exc.strerror})") from exc
    if kind is None:
        raise CheckpointError(f"{path}: cannot read weights file, not a PyTorch (.pth/.pt/.bin) or safetensors "
                              f"checkpoint (its first bytes are neither a zip archive, a pickle nor a safetensors "
                              f"header)")
    try:
        key, data = _file_key(path), path.read_bytes()  # read once: loaded and hashed from the same bytes
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read weights file ({exc.strerror})") from exc
    _DIGESTS[key] = hashlib.sha256(data).hexdigest()
    try:
        if kind == "safetensors":
            from safetensors.torch import load

            raw = load(data)
        else:
            raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or not a checkpoint at all
        raise CheckpointError(f"{path}: cannot read weights file, not a valid PyTorch or safetensors checkpoint "
                              f"({type(exc).__name__}: {exc})") from exc
    return check_finite_state(_unwrap(raw, path), path)


def check_finite_state(state: dict[str, torch.Tensor], source: str | Path) -> dict[str, torch.Tensor]:
    """``state`` unchanged if every floating-point tensor is finite; else :class:`CheckpointError` naming
    ``source``, the first tensor holding NaN or infinite values and how many (weights damaged in training
    or in transfer would otherwise give all-NaN features and a meaningless score)."""
    for name, tensor in state.items():
        if not tensor.is_floating_point() or bool(torch.isfinite(tensor).all()):
            continue
        nan = int(torch.isnan(tensor).sum())
        inf = tensor.numel() - nan - int(torch.isfinite(tensor).sum())
        what = " and ".join(part for part in (f"{nan} NaN" if nan else "", f"{inf} infinite" if inf else "") if part)
        others = [n for n, t in state.items() if n != name and t.is_floating_point() and not bool(torch.isfinite(t).all())]
        more = f" ({len(others)} more tensors too, e.g. {others[0]})" if others else ""
        raise CheckpointError(f"{source}: tensor {name} holds non-finite values: {what} of {tensor.numel()}{more}; "
                              f"the weights are damaged and would give NaN features, refusing them (use an intact "
                              f"copy of the checkpoint)")
    return state


def _unwrap(raw: object, path: Path) -> dict[str, torch.Tensor]:
    """Peel training-checkpoint wrappers (teacher/model/state_dict) and module prefixes."""
    for wrapper in ("teacher", "model", "state_dict", "model_ema"):
        if isinstance(raw, dict) and wrapper in raw and isinstance(raw[wrapper], dict):
            raw = raw[wrapper]
            break
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    state = dict(raw)
    changed = True
    while changed:  # strip stacked prefixes such as "module.backbone."
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) or k.startswith(_IGNORED_PREFIXES) for k in state):
                state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
                changed = True
    return state


def _filter_fn(model: nn.Module):
    """timm's key conversion for the model's family."""
    if isinstance(model, eva.Eva):
        return eva.checkpoint_filter_fn
    if isinstance(model, naflexvit.NaFlexVit):
        return naflexvit.checkpoint_filter_fn
    return vision_transformer.checkpoint_filter_fn


_REGISTER_KEYS = ("register_tokens", "reg_token", "storage_tokens")  # official DINOv2, timm, official DINOv3


def _check_registers(state: dict[str, torch.Tensor], model: nn.Module, path: Path) -> None:
    """Refuse, naming the key, a checkpoint whose register (storage) tokens the model lacks or that lacks
    the model's: before timm's filters, which would fail on the position grid's size instead."""
    if isinstance(model, naflexvit.NaFlexVit):  # RADIO's own layout names its tokens otherwise
        return
    key = next((k for k in _REGISTER_KEYS if k in state), None)
    have = 0 if key is None else state[key].shape[-2]
    reg = getattr(model, "reg_token", None)
    want = 0 if reg is None else reg.shape[-2]
    if have != want:
        found = f"{have} register tokens ({key})" if key else f"no register tokens (none of {', '.join(_REGISTER_KEYS)})"
        raise CheckpointError(f"{path}: weights do not fit this backbone: the checkpoint has {found}, the model "
                              f"{f'has {want} (reg_token)' if want else 'has none'}; is it a "
                              f"{'registers (_reg)' if have else 'no-registers'} checkpoint?")


def _block_count(keys) -> int:
    found = {int(k.split(".")[1]) for k in keys if k.startswith("blocks.") and k.split(".")[1].isdigit()}
    return max(found) + 1 if found else 0


def _layout(state: dict[str, torch.Tensor]) -> dict | None:
    """What a checkpoint's tensors say about its ViT: patch size, width, depth, learned position grid (side
    of positions), register/storage tokens; ``None`` when it has no ``patch_embed.proj.weight``."""
    patch = state.get("patch_embed.proj.weight")
    if patch is None or patch.ndim != 4:
        return None
    grid = state.get("pos_embed")
    register = next((k for k in _REGISTER_KEYS if k in state), None)
    return {"patch": int(patch.shape[-1]), "width": int(patch.shape[0]), "depth": _block_count(state),
            "grid": None if grid is None or grid.numel() == 0 else int(grid.shape[-2]),
            "registers": 0 if register is None else int(state[register].shape[-2])}


def _describe(layout: dict) -> str:
    positions = (f"a learned position grid ({layout['grid']} positions, as DINO, DINOv2, MAE, CLIP)" if layout["grid"]
                 else "rotary positions (as DINOv3), no learned grid")
    tokens = f", {layout['registers']} register/storage tokens" if layout["registers"] else ", no register tokens"
    return (f"a ViT with {positions}, patch {layout['patch']}, width {layout['width']}, {layout['depth']} blocks"
            f"{tokens}")


def _fitting_presets(layout: dict) -> list[str]:
    """Presets whose architecture has the checkpoint's patch size, width, depth and kind of positions."""
    from hummingbird.models.presets import PRESETS

    learned = layout["grid"] is not None
    return [name for name, p in PRESETS.items()
            if (p.patch_size, p.embed_dim, p.depth) == (layout["patch"], layout["width"], layout["depth"])
            and (p.position in ("official", "timm")) == learned and (("_reg" in name) == bool(layout["registers"])
                                                                       or p.family not in ("dino", "dinov2"))]


def _check_family(state: dict[str, torch.Tensor], model: nn.Module, path: Path) -> None:
    """Refuse, naming both architectures, a checkpoint of another family than the model (e.g. DINOv2 weights
    given to a DINOv3 preset: a learned position grid where the model has rotary positions, another patch
    size), before the narrower checks whose words would point elsewhere (register tokens, key names)."""
    if isinstance(model, naflexvit.NaFlexVit):
        return
    have = _layout(state)
    own = _layout(model.state_dict())
    if have is None or own is None:
        return
    if (have["grid"] is None) == (own["grid"] is None) and have["patch"] == own["patch"]:
        return
    fitting = _fitting_presets(have)
    hint = (f"choose the backbone it belongs to ({', '.join(fitting[:4])})" if fitting
            else "choose a backbone of its architecture")
    raise CheckpointError(f"{path}: weights of another model family: the checkpoint is {_describe(have)}; this "
                          f"backbone is {_describe(own)}; give it a checkpoint of its own family, or {hint}")


def load_into_model(model: nn.Module, path: str | Path) -> None:
    """Load a checkpoint file into ``model`` in place, strictly on the backbone's parameters.

    Raises :class:`CheckpointError` naming the file and listing missing/unexpected keys or
    shape mismatches (e.g. a ViT-B checkpoint given to a ViT-S preset, registers missing or present,
    another depth).
    """
    path = Path(path)
    state = read_state_dict(path)
    _check_family(state, model, path)
    _check_registers(state, model, path)
    periods = None
    try:
        if isinstance(model, eva.Eva) and dinov3.is_official_dinov3(state):
            state, periods = dinov3.official_to_timm(state, model, path)
        else:
            state = _filter_fn(model)(state, model)
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot map weights onto {type(model).__name__} ({exc})") from exc
    state = {k: v for k, v in state.items() if not k.startswith(_IGNORED_PREFIXES)}
    own = model.state_dict()
    own_keys = {k for k in own if not k.startswith(_IGNORED_PREFIXES)}
    missing = sorted(own_keys - state.keys())
    unexpected = sorted(state.keys() - own_keys)
    wrong_shape = sorted(
        f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own_keys & state.keys()
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_preview(unexpected)}")
        if wrong_shape:
            parts.append(f"shape mismatches ({len(wrong_shape)}): {_preview(wrong_shape)}")
        raise CheckpointError(
            f"{path}: weights do not fit this backbone (is it another architecture?); " + "; ".join(parts)
        )
    model.load_state_dict(state, strict=False)
    if periods is not None:
        try:
            dinov3.use_official_rope_periods(model, periods)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc


def _preview(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")
