"""Locating real weights and images: HUMMINGBIRD_* variables first, then ../shared/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hummingbird.backbones import preset_from_filename

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEIGHT_SUFFIXES = (".pth", ".safetensors", ".bin")


def real_weights() -> tuple[str, Path]:
    """(preset, weights path) or skip."""
    path = os.environ.get("HUMMINGBIRD_WEIGHTS")
    candidates = [Path(path)] if path else sorted(p for p in (SHARED / "weights").glob("*")
                                                  if p.suffix in WEIGHT_SUFFIXES) if (SHARED / "weights").is_dir() else []
    for candidate in candidates:
        name = os.environ.get("HUMMINGBIRD_BACKBONE") or preset_from_filename(candidate)
        if candidate.is_file() and name:
            return name, candidate
    pytest.skip("no real weights: set HUMMINGBIRD_WEIGHTS (and HUMMINGBIRD_BACKBONE) or add ../shared/weights/")


def real_voc() -> Path:
    """A Pascal VOC root or skip."""
    for candidate in filter(None, [os.environ.get("HUMMINGBIRD_DATA"), SHARED / "voc", SHARED / "VOCdevkit"]):
        candidate = Path(candidate)
        if any((candidate / sub / "JPEGImages").is_dir() for sub in ("", "VOC2012", "VOCdevkit/VOC2012")):
            return candidate
    pytest.skip("no real Pascal VOC images: set HUMMINGBIRD_DATA or add ../shared/voc/")
