"""Frozen ViT backbones that return patch tokens on their patch grid.

``load_backbone("dino_vits16", weights="dino_deitsmall16_pretrain.pth")`` gives a
:class:`PatchEncoder`; calling it on images ``(B, 3, H, W)`` in ``[0, 1]`` returns patch tokens
``(B, H/p, W/p, D)`` with the class, register and storage tokens removed, for any ``H, W`` divisible by
the patch size ``p``. Three timm families are supported: ``VisionTransformer`` (learned position grids:
DINO, DINOv2, CLIP, MAE, SigLIP 2), ``Eva`` (rotary positions: DINOv3, EUPE, Perception Encoder) and
``NaFlexVit`` (SigLIP 2 NaFlex, C-RADIO). The presets are declared in :mod:`hummingbird.models.presets`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import timm
import torch
from einops import rearrange
from torch import nn

from hummingbird.catalog import DEFAULT_BACKBONE, DEFAULT_INPUT_SIZE, RANDOM_WEIGHTS  # noqa: F401 (re-exported)
from hummingbird.errors import ConfigError, WeightsUnavailableError, option
from hummingbird.files.paths import require_weights, weights_from_environment
from hummingbird.models.checkpoints import check_finite_state, file_sha256, load_into_model
from hummingbird.models.dinov3 import use_official_rope_periods
from hummingbird.models.pos_embed import install_position_rule, native_position_rule
from hummingbird.models.precision import FP32, autocast, checked_precision, resolve_precision
from hummingbird.models.presets import PRESETS, Preset, preset_from_filename, weights_hint  # noqa: F401


class PatchEncoder(nn.Module):
    """A frozen timm ViT returning patch tokens ``(B, h, w, D)`` from one block or several blocks.

    Args:
        model: a timm ``VisionTransformer`` or ``Eva`` created with ``dynamic_img_size=True``, or a
            ``NaFlexVit``.
        layer: block index whose output is returned (negative counts from the end; ``-1`` is the last
            block), or a sequence of them, whose tokens are concatenated in that order (``D = len(layer)
            · width``). The final norm is applied to each chosen block's output.
        name: preset or timm name, recorded in bank metadata.
        weights_id: identifies the weights (file SHA-256, hub tag, or ``random:seed<N>``).
        weights_file: the local checkpoint the weights came from (absolute), recorded so that commands
            given a bank find it again; not part of a bank's compatibility check (``weights_id`` is).
        normalisation: ``(mean, std)`` of the input normalisation; default: the preset's, else the
            model's pretrained config.
        precision: arithmetic of the forward pass (and of FUNGI's backward pass): ``fp32`` (default,
            the exact reference), ``bf16``/``fp16`` (autocast) or ``auto`` (resolved per device by
            :func:`hummingbird.models.precision.resolve_precision`; the CLI's default). Tokens come out float32
            in every precision.
    """

    def __init__(self, model: nn.Module, layer: int | Sequence[int] = -1, name: str = "custom",
                 weights_id: str = "unknown", normalisation: tuple[tuple, tuple] | None = None,
                 weights_file: str | None = None, precision: str = FP32):
        super().__init__()
        native_position_rule(model)  # refuses unsupported model classes
        depth = len(model.blocks)
        requested = [layer] if isinstance(layer, int) else list(layer)
        bad = [i for i in requested if not -depth <= i < depth]
        if bad or not requested:
            raise ConfigError(f"{option('layer', bad or requested)} is out of range for {name} "
                              f"with {depth} blocks")
        self.model = model.eval().requires_grad_(False)
        self.layers = tuple(i % depth for i in requested)
        if len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"{option('layer', requested)} names a block of {name} twice")
        self.name = name
        self.weights_id = weights_id
        self.weights_file = weights_file
        embeds = getattr(model, "patch_embed", None) or model.embeds
        self.patch_size = int(embeds.patch_size[0])
        self.width = int(model.embed_dim)
        self.embed_dim = self.width * len(self.layers)
        self.num_prefix_tokens = int(model.num_prefix_tokens)
        mean, std = normalisation or default_normalisation(name, model)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.precision = checked_precision(precision)
        self.compiled_tokens = None  # torch.compile'd tokens_from_normalised (see compiled())

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def active_precision(self) -> str:
        """The precision the forward pass runs in on the encoder's device (``auto`` resolved)."""
        return resolve_precision(self.precision, self.device)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to :attr:`active_precision` on the encoder's device (none for fp32)."""
        return autocast(self.active_precision, self.device)

    def compiled(self) -> "PatchEncoder":
        """This encoder with its inference forward run through ``torch.compile`` (compiled once per
        input shape on first use; FUNGI's backward pass stays eager). Returns ``self``."""
        if not torch.cuda.is_available():
            _import_quietly("torch.utils.cpp_extension")  # its import logs "No CUDA runtime is found" on a CPU
        self.compiled_tokens = torch.compile(self.tokens_from_normalised, dynamic=False)
        return self

    @property
    def layer(self) -> int | list[int]:
        """The block index (one layer) or the list of them (several), as bank metadata records it."""
        return self.layers[0] if len(self.layers) == 1 else list(self.layers)

    @property
    def default_input_size(self) -> int:
        """Square input side when none is given: the preset's, else by patch size."""
        preset = PRESETS.get(self.name)
        return preset.input_size if preset else DEFAULT_INPUT_SIZE.get(self.patch_size, 512)

    def check_input_size(self, height: int, width: int) -> None:
        """Raise :class:`ConfigError` unless both sides are positive multiples of the patch size."""
        p = self.patch_size
        if height < p or width < p or height % p or width % p:
            suggestion = max(p, round(max(height, width) / p) * p)
            raise ConfigError(
                f"input size {height}x{width} is not a multiple of {self.name}'s patch size {p} "
                f"(try {option('input_size', suggestion)})"
            )

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` in ``[0, 1]`` → the backbone's normalised input."""
        return (images - self.mean) / self.std

    def tokens_and_prefix_from_normalised(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images ``(B, 3, H, W)`` → patch tokens ``(B, h, w, D)`` and the prefix tokens of the
        same pass ``(B, num_prefix_tokens, D)`` (class token first, then registers or storage tokens),
        both after the final norm and concatenated over the chosen layers in their order (graph kept)."""
        h, w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        blocks = sorted(self.layers)
        out = self.model.forward_intermediates(x, indices=blocks, norm=True, stop_early=True, output_fmt="NLC",
                                               intermediates_only=True,
                                               return_prefix_tokens=self.num_prefix_tokens > 0)
        if self.num_prefix_tokens == 0:
            out = [(tokens, tokens[:, :0]) for tokens in out]
        by_block = dict(zip(blocks, out))
        tokens = torch.cat([by_block[i][0] for i in self.layers], dim=-1)
        prefix = torch.cat([by_block[i][1] for i in self.layers], dim=-1)
        return rearrange(tokens, "b (h w) d -> b h w d", h=h, w=w), prefix

    def tokens_from_normalised(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images ``(B, 3, H, W)`` → patch tokens ``(B, h, w, D)`` (graph kept)."""
        return self.tokens_and_prefix_from_normalised(x)[0]

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` in ``[0, 1]`` → float32 patch tokens ``(B, H/p, W/p, D)``."""
        self.check_input_size(images.shape[-2], images.shape[-1])
        tokens_of = self.compiled_tokens or self.tokens_from_normalised
        with self.autocast():
            tokens = tokens_of(self.normalise(images))
        return tokens.float()

    @property
    def pos_embed(self) -> str:
        """The position rule in use (``official``, ``timm``, ``rope``, ``rope+timm`` or ``naflex``)."""
        return getattr(self.model, "pos_embed_rule", "timm")

    @property
    def normalisation(self) -> dict:
        """``{"mean": [...], "std": [...]}`` of the input normalisation."""
        return normalisation_record(self.mean.flatten().tolist(), self.std.flatten().tolist())

    def metadata(self) -> dict:
        """What a memory bank must record to be reused with this encoder."""
        return {
            "backbone": self.name,
            "weights": self.weights_id,
            **({"weights_file": self.weights_file} if self.weights_file else {}),
            "layer": self.layer,
            "patch_size": self.patch_size,
            "embed_dim": self.embed_dim,
            "pos_embed": self.pos_embed,
            "normalisation": self.normalisation,
            "precision": self.active_precision,  # recorded, not checked: banks are searched across precisions
        }


def normalisation_record(mean, std) -> dict:
    """``{"mean": [...], "std": [...]}`` rounded to 6 decimals, as bank metadata records it."""
    return {"mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std]}


def legacy_normalisation(name: str | None) -> dict:
    """The normalisation record of a backbone's pretrained config, without building the model (what
    banks of format version 1 used, which did not record it)."""
    if name in PRESETS:
        return normalisation_record(PRESETS[name].mean, PRESETS[name].std)
    cfg = timm.models.get_pretrained_cfg(resolve_timm_name(name)) if str(name).startswith("timm:") else None
    mean = getattr(cfg, "mean", None) or (0.485, 0.456, 0.406)
    std = getattr(cfg, "std", None) or (0.229, 0.224, 0.225)
    return normalisation_record(mean, std)


def default_normalisation(name: str, model: nn.Module) -> tuple[tuple, tuple]:
    """``(mean, std)`` of a preset, else of a timm model's pretrained config (ImageNet statistics when it
    has none)."""
    if name in PRESETS:
        return PRESETS[name].mean, PRESETS[name].std
    cfg = model.pretrained_cfg or {}
    return tuple(cfg.get("mean", (0.485, 0.456, 0.406))), tuple(cfg.get("std", (0.229, 0.224, 0.225)))


def _import_quietly(module: str) -> None:
    """Import ``module`` with its logger's warnings held back (messages about hardware this run does not
    use, such as torch's "No CUDA runtime is found" when ``torch.compile`` runs on a CPU)."""
    import importlib
    import logging

    logger = logging.getLogger(module)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        importlib.import_module(module)
    finally:
        logger.setLevel(level)


def resolve_timm_name(name: str) -> str:
    """Preset name or ``timm:<model_name>`` → a timm model name (with pretrained tag)."""
    if name in PRESETS:
        return PRESETS[name].timm_name
    if name.startswith("timm:"):
        return name[len("timm:"):]
    raise ConfigError(f"unknown backbone {name!r}; use a preset (hummingbird backbones lists them: "
                      f"{', '.join(PRESETS)}), or timm:<model name>")


def load_backbone(name: str, weights: str | Path | None = None, layer: int | Sequence[int] = -1, seed: int = 0,
                  pos_embed: str | None = None, normalisation: tuple[tuple, tuple] | None = None,
                  precision: str = FP32, **model_kwargs) -> PatchEncoder:
    """Build a frozen :class:`PatchEncoder` in eval mode.

    Args:
        name: a key of :data:`~hummingbird.models.presets.PRESETS` or ``timm:<model name>``.
        weights: a local checkpoint path (official DINO/DINOv2/DINOv3/MAE/CLIP ``.pth`` or timm
            ``.safetensors``/``.pth``); ``"random"`` for a seeded random init (tests, speed
            benchmarks); ``None`` for timm's pretrained weights from the local Hugging Face cache or,
            when online, a download.
        layer: block whose output is returned (``-1``: last), or several blocks (concatenated).
        seed: seed of the random init when ``weights == "random"``.
        pos_embed: resampling rule of learned position grids, ``"official"`` (DINO/DINOv2's) or ``"timm"``;
            default: the preset's. Models with rotary or NaFlex positions accept only their own rule.
        normalisation: ``(mean, std)`` overriding the preset's.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto`` (see :class:`PatchEncoder`).
        model_kwargs: passed to ``timm.create_model`` (e.g. ``depth=2`` for tiny test models).

    DINOv3 presets use the RoPE periods Meta's checkpoints hold (bf16-rounded), and an official
    checkpoint's own ``rope_embed.periods`` when given one (see :mod:`hummingbird.models.dinov3`).
    """
    timm_name = resolve_timm_name(name)
    kwargs = dict(num_classes=0, **model_kwargs)
    if not timm_name.startswith("naflexvit_"):  # NaFlexVit takes any grid without being told
        kwargs["dynamic_img_size"] = True
    if weights is None:
        model = _create_pretrained(name, timm_name, kwargs)
        check_finite_state(model.state_dict(), f"timm's pretrained weights for {name} ({timm_name})")
        weights_id = f"timm:{timm_name}"
    elif str(weights) == RANDOM_WEIGHTS:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = _create(timm_name, kwargs)
        weights_id = f"random:seed{seed}"
    else:
        model = _create(timm_name, kwargs)
    preset = PRESETS.get(name)
    if preset is not None and preset.family == "dinov3":
        use_official_rope_periods(model)
    if weights is not None and str(weights) != RANDOM_WEIGHTS:
        load_into_model(model, weights)
        weights_id = f"sha256:{file_sha256(weights)}"
    install_position_rule(model, pos_embed, preset.position if preset and preset.learned_positions else "timm")
    weights_file = None if weights is None or str(weights) == RANDOM_WEIGHTS else str(Path(weights).resolve())
    return PatchEncoder(model, layer=layer, name=name, weights_id=weights_id, normalisation=normalisation,
                        weights_file=weights_file, precision=precision)


def _create(timm_name: str, kwargs: dict) -> nn.Module:
    try:
        return timm.create_model(timm_name, pretrained=False, **kwargs)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"timm cannot build {timm_name!r}: {exc}") from exc


def _create_pretrained(name: str, timm_name: str, kwargs: dict) -> nn.Module:
    """timm's pretrained weights: from the local Hugging Face cache without touching the network, else
    downloaded when the hub answers; offline, one clear error within about two seconds (no retries)."""
    hint = f"{weights_hint(name)} (or set HUMMINGBIRD_WEIGHTS)"
    cached = _cached_weights(timm_name)
    if cached is not None:
        try:
            return timm.create_model(timm_name, pretrained=True, pretrained_cfg_overlay={"file": cached}, **kwargs)
        except Exception as exc:
            raise WeightsUnavailableError(f"{cached}: cached pretrained weights for {name} cannot be read "
                                          f"({type(exc).__name__}: {exc}); {hint}") from exc
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise WeightsUnavailableError(f"no pretrained weights for {name} in the local cache and "
                                      f"HF_HUB_OFFLINE is set; {hint}")
    host = _hub_unreachable()
    if host is not None:
        raise WeightsUnavailableError(f"cannot obtain pretrained weights for {name}: not in the local cache and "
                                      f"{host} cannot be reached (offline?); {hint}")
    try:
        return timm.create_model(timm_name, pretrained=True, **kwargs)
    except Exception as exc:  # network down, hub unreachable, cache miss
        raise WeightsUnavailableError(f"cannot obtain pretrained weights for {name} "
                                      f"({type(exc).__name__}); {hint}") from exc


def _cached_weights(timm_name: str) -> str | None:
    """Path of timm's Hugging Face weights file for ``timm_name`` in the local cache, if downloaded."""
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(timm_name)
    if cfg is None or not cfg.hf_hub_id:
        return None
    hub_id = cfg.hf_hub_id.split("@")[0]
    filenames = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin",
                                                                  "open_clip_pytorch_model.bin"]
    found = (try_to_load_from_cache(hub_id, f) for f in filenames)
    return next((f for f in found if isinstance(f, str)), None)


def _hub_unreachable(timeout: float = 1.5) -> str | None:
    """``None`` when a TCP connection to the Hugging Face endpoint (or the HTTPS proxy) opens within
    ``timeout`` seconds, else the ``host:port`` that could not be reached. Name resolution runs in a
    thread, so a resolver that never answers cannot stall the caller."""
    import socket
    import threading
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlsplit(proxy if proxy else constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    reached = threading.Event()

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            reached.set()
        except OSError:
            pass

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    return None if reached.is_set() else f"{host}:{port}"


def resolve_backbone(name: str | None, weights: str | Path | None) -> tuple[str, str | Path | None]:
    """Fill a missing backbone name or weights path from ``HUMMINGBIRD_BACKBONE`` /
    ``HUMMINGBIRD_WEIGHTS`` and from official weight file names; checks the file exists. Without a weights
    file (timm's pretrained weights, or ``random``) the backbone defaults to
    :data:`~hummingbird.catalog.DEFAULT_BACKBONE`; a file whose name tells no backbone needs one."""
    weights = require_weights(weights_from_environment(weights))
    name = name or os.environ.get("HUMMINGBIRD_BACKBONE") or (preset_from_filename(weights) if weights else None)
    if name is None and (weights is None or str(weights) == RANDOM_WEIGHTS):
        name = DEFAULT_BACKBONE
    if name is None:
        raise ConfigError(f"{option('backbone')} is required (it could not be told from the weights file name "
                          f"{Path(weights).name}; hummingbird backbones lists the presets)")
    return name, weights


def encoder_from_weights_file(name: str | None, weights: str | Path | None, layer: int = -1,
                              **options) -> PatchEncoder:
    """:func:`load_backbone` (with ``options``) after :func:`resolve_backbone` (environment variables,
    file names)."""
    name, weights = resolve_backbone(name, weights)
    return load_backbone(name, weights=weights, layer=layer, **options)
