"""One ``.safetensors`` file of named tensors plus a JSON metadata record under one key."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from hummingbird.errors import BankError
from hummingbird.files.atomic import atomic_path


def write_tensor_file(path: str | Path, tensors: dict[str, torch.Tensor], key: str, metadata: dict) -> Path:
    """Write ``tensors`` and ``metadata`` (as JSON under ``key``) atomically; a failed write (disk full,
    file size limit, ...) is an :class:`~hummingbird.errors.OutputError` naming ``path``."""
    with atomic_path(path, errors=(SafetensorError,)) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp,
                  metadata={key: json.dumps(metadata, sort_keys=True)})
    return Path(path)


def read_tensor_file(path: str | Path, key: str, what: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a file written by :func:`write_tensor_file`; :class:`BankError` naming
    the file and ``what`` it should be when it is missing, unreadable, or of another kind."""
    path = Path(path)
    if not path.is_file():
        raise BankError(f"{path}: {what} file not found")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(key)
    except (SafetensorError, OSError, ValueError) as exc:
        raise BankError(f"{path}: not a readable {what} ({exc})") from exc
    if raw is None:
        raise BankError(f"{path}: a safetensors file but not a {what}")
    try:
        return tensors, json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BankError(f"{path}: {what} metadata is not valid JSON ({exc})") from exc
