"""The inputs a job reads, checked before anything heavy is imported or loaded: a missing bank, dataset
folder or weights file is one line at once (the command line answers in a fraction of a second instead of
after importing torch), with the same words the loaders use."""

from __future__ import annotations

import os
from pathlib import Path

from hummingbird.errors import BankError, CheckpointError, DatasetError, option

RANDOM_WEIGHTS = "random"  # the weights value for a seeded random init (hummingbird.catalog.RANDOM_WEIGHTS)
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


def require_bank(path: str | Path) -> Path:
    """``path`` as a bank: a file, or a sharded bank's folder; :class:`BankError` when there is nothing."""
    path = Path(path)
    if not path.exists():
        raise BankError(f"{path}: memory bank file not found")
    return path


def require_data_root(path: str | Path) -> Path:
    """``path`` as a dataset folder; :class:`DatasetError` when it is missing or a file."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: dataset folder does not exist")
    if not path.is_dir():
        raise DatasetError(f"{path}: is a file, not a dataset folder")
    return path


def require_weights(weights: str | Path | None) -> str | Path | None:
    """A weights file to load (``None`` and ``random`` pass): a folder is named as such with the checkpoints
    in it, a missing file as missing (:class:`CheckpointError`)."""
    if weights is None or str(weights) == RANDOM_WEIGHTS:
        return weights
    path = Path(weights)
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
        listed = f"; it holds {', '.join(inside[:5])}{' ...' if len(inside) > 5 else ''}" if inside else ""
        raise CheckpointError(f"{weights}: {option('weights')} is a folder, not a weights file; give the checkpoint "
                              f"file itself{listed}")
    if not path.is_file():
        raise CheckpointError(f"{weights}: weights file not found")
    return weights


def weights_from_environment(weights: str | Path | None) -> str | Path | None:
    """``weights``, else ``$HUMMINGBIRD_WEIGHTS`` (unset or empty: ``None``)."""
    return weights if weights is not None else os.environ.get("HUMMINGBIRD_WEIGHTS") or None
