"""Locating real weights, images and peer answers: HUMMINGBIRD_* variables first, then ../shared/."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hummingbird.models.backbones import preset_from_filename

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEIGHT_SUFFIXES = (".pth", ".safetensors", ".bin")


def _listed_presets(folder: Path) -> dict[str, str]:
    """``weights.json`` of a weights folder: file name → backbone preset (names there are not official)."""
    listing = folder / "weights.json"
    return {e["file"]: e["backbone"] for e in json.loads(listing.read_text())} if listing.is_file() else {}


def real_weights() -> tuple[str, Path]:
    """(preset, weights path) or skip."""
    path = os.environ.get("HUMMINGBIRD_WEIGHTS")
    folder = SHARED / "weights"
    candidates = [Path(path)] if path else sorted(p for p in folder.glob("*")
                                                  if p.suffix in WEIGHT_SUFFIXES) if folder.is_dir() else []
    listed = _listed_presets(folder)
    for candidate in candidates:
        name = os.environ.get("HUMMINGBIRD_BACKBONE") or listed.get(candidate.name) or preset_from_filename(candidate)
        if candidate.is_file() and name:
            return name, candidate
    pytest.skip("no real weights: set HUMMINGBIRD_WEIGHTS (and HUMMINGBIRD_BACKBONE) or add ../shared/weights/")


def _data_folders() -> list[Path]:
    """$HUMMINGBIRD_DATA (laid out as the data cache: voc/VOCdevkit/..., ade20k/ADEChallengeData2016), then
    ../shared (the same layout)."""
    return [*([Path(os.environ["HUMMINGBIRD_DATA"])] if os.environ.get("HUMMINGBIRD_DATA") else []), SHARED]


def real_voc() -> Path:
    """A Pascal VOC root or skip: ``voc/`` of $HUMMINGBIRD_DATA or ../shared (or $HUMMINGBIRD_DATA itself
    when it is a VOC root)."""
    candidates = [c for folder in _data_folders() for c in (folder / "voc", folder, folder / "VOCdevkit")]
    for candidate in candidates:
        if any((candidate / sub / "JPEGImages").is_dir() for sub in ("", "VOC2012", "VOCdevkit/VOC2012")):
            return candidate
    pytest.skip("no real Pascal VOC images: set HUMMINGBIRD_DATA or add ../shared/voc/")


def real_ade20k() -> Path:
    """An ADEChallengeData2016 root or skip: under ``ade20k/`` of $HUMMINGBIRD_DATA or ../shared."""
    for folder in _data_folders():
        root = folder / "ade20k" / "ADEChallengeData2016"
        if (root / "images").is_dir() and (root / "annotations").is_dir():
            return root
    pytest.skip("no real ADE20K pairs: set HUMMINGBIRD_DATA or add ../shared/ade20k/ADEChallengeData2016/")


def real_nyu() -> Path:
    """The NYUv2 folder of ../shared (DenseDepth test pairs + raw_sync/) or skip."""
    root = SHARED / "nyu"
    if (root / "nyu2_test.csv").is_file():
        return root
    pytest.skip("no real NYUv2 pairs: add ../shared/nyu/")


def real_peer(name: str) -> Path:
    """A peer's answers folder under ../shared/peers/ or skip."""
    folder = SHARED / "peers" / name
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    pytest.skip(f"no peer answers: ../shared/peers/{name}/ is absent")


def real_davis() -> Path:
    """The DAVIS root of ../shared (JPEGImages/480p, Annotations/480p) or skip."""
    root = SHARED / "davis" / "DAVIS"
    if (root / "JPEGImages" / "480p").is_dir() and (root / "Annotations" / "480p").is_dir():
        return root
    pytest.skip("no real DAVIS sequences: add ../shared/davis/DAVIS/")
