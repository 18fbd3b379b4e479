"""Arithmetic precision of the backbone (and FUNGI's backward pass): what the processor runs natively.

``--precision auto`` resolves per device at run time:

* CUDA: ``bf16`` where the GPU supports it, else ``fp16`` (autocast, as before this option existed);
* CPU: ``bf16`` where the processor has native bfloat16 matrix instructions (AMX-BF16 or
  AVX512-BF16, read from ``/proc/cpuinfo`` flags, else torch's CPU capability) **and**
  :data:`CPU_AUTO_BF16` is set — it is, because on the real VOC subset bf16 keeps ≥ 99 % of the
  pixel labels of fp32 and moves mIoU by < 0.2 points (README "Precision"); fp32 elsewhere
  (AVX2-only CPUs emulate bf16 slowly).

Presets that reproduce a peer ask for the peer's precision (``open-hbird``: fp32), which ``auto``
then yields. Features leave the backbone as float32 in every precision, so banks built in one
precision are searched with queries of another. ``fp16`` on a CPU without AMX-FP16 is refused: its
matrix products are emulated (measured 0.4 GFLOP/s against 180 for fp32 on an AVX-512 EPYC).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

AUTO, FP32, BF16, FP16 = "auto", "fp32", "bf16", "fp16"
PRECISIONS = (AUTO, FP32, BF16, FP16)  # --precision choices
CPU_AUTO_BF16 = True  # bf16 passed the agreement bar on the real VOC subset (eval/bench_precision.py)
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bfloat16 matrix products
CPU_FP16_FLAGS = ("amx_fp16",)


@functools.lru_cache(maxsize=1)
def _first_processor() -> dict[str, str]:
    """The ``key: value`` fields of the first processor in ``/proc/cpuinfo`` (empty where it cannot be
    read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor's block ends at the first blank line
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_flags() -> frozenset[str]:
    """The first processor's feature flags from ``/proc/cpuinfo`` (empty where it cannot be read)."""
    return frozenset(_first_processor().get("flags", "").split())


def cpu_model() -> str:
    """The processor's model name (``platform.processor()`` where ``/proc/cpuinfo`` is missing)."""
    model = _first_processor().get("model name")
    if model:
        return model
    import platform

    return platform.processor() or "unknown"


def torch_cpu_capability() -> str:
    """torch's vectorisation level on this CPU (``DEFAULT``, ``AVX2``, ``AVX512``, ``ZVECTOR``, ...)."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AMX-BF16 or AVX512-BF16)."""
    flags = cpu_flags()
    if flags:
        return any(f in flags for f in CPU_BF16_FLAGS)
    return "AMX" in torch_cpu_capability().upper()  # no /proc/cpuinfo: only AMX is told by torch


def cpu_has_native_fp16() -> bool:
    """Whether this CPU multiplies float16 matrices natively (AMX-FP16)."""
    return any(f in cpu_flags() for f in CPU_FP16_FLAGS)


def processor() -> dict:
    """The CPU's model, its bfloat16/float16 flags and torch's capability (for benchmark reports)."""
    flags = cpu_flags()
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16", "amx_tile")
    return {"model": cpu_model(), "flags": [f for f in wanted if f in flags],
            "torch_capability": torch_cpu_capability(), "native_bf16": cpu_has_native_bf16()}


def checked_precision(requested: str) -> str:
    """``requested`` if it is one of :data:`PRECISIONS`; else :class:`~hummingbird.errors.ConfigError`."""
    if requested not in PRECISIONS:
        from hummingbird.errors import ConfigError, option

        raise ConfigError(f"{option('precision', requested)}: choose from {', '.join(PRECISIONS)}")
    return requested


def resolve_precision(requested: str | None, device) -> str:
    """``--precision`` → ``fp32``, ``bf16`` or ``fp16`` for ``device`` (``auto``/``None``: see the module
    docstring). Raises :class:`~hummingbird.errors.ConfigError` for an unknown name or fp16 on a CPU
    that would emulate it."""
    import torch

    from hummingbird.errors import ConfigError, option

    requested = checked_precision(requested or AUTO)
    device = torch.device(device)
    cuda = device.type == "cuda"
    if requested == AUTO:
        if cuda:
            return BF16 if torch.cuda.is_bf16_supported() else FP16
        return BF16 if device.type == "cpu" and CPU_AUTO_BF16 and cpu_has_native_bf16() else FP32
    if requested == FP16 and device.type == "cpu" and not cpu_has_native_fp16():
        raise ConfigError(f"{option('precision', 'fp16')}: this CPU has no native float16 matrix products (AMX-FP16) and "
                          "would emulate them hundreds of times slower; use bf16 or fp32")
    return requested


def autocast(precision: str, device) -> contextlib.AbstractContextManager:
    """Autocast to ``precision`` (``fp32``: none) on ``device``'s type."""
    import torch

    if precision == FP32:
        return contextlib.nullcontext()
    dtype = {BF16: torch.bfloat16, FP16: torch.float16}[precision]
    return torch.autocast(torch.device(device).type, dtype=dtype)
