"""Synthetic datasets written to temporary folders in each real on-disk layout."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hummingbird.datasets.palettes import voc_palette
from hummingbird.datasets.synthetic import write_block_dataset


def write_folder_dataset(root: Path, **kwargs) -> Path:
    """images/ + masks/ + classes.txt + splits/{train,val}.txt of separable class-coloured blocks."""
    return write_block_dataset(root, **kwargs)


def write_voc(root: Path, ids_train=("2007_000032", "2007_000039"), ids_val=("2007_000033",), size=(40, 32)) -> Path:
    """VOCdevkit/VOC2012 with palette PNG masks (255 boundaries), SegmentationClassAug and trainaug."""
    voc = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation",
              "ImageSets/SegmentationAug"):
        (voc / d).mkdir(parents=True)
    rng = np.random.default_rng(1)
    w, h = size
    for i in (*ids_train, *ids_val):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(voc / "JPEGImages" / f"{i}.jpg")
        mask = np.zeros((h, w), np.uint8)
        mask[: h // 2] = 15  # person
        mask[h // 2] = 255  # boundary
        pal = Image.fromarray(mask, mode="P")
        pal.putpalette(voc_palette().flatten().tolist())
        pal.save(voc / "SegmentationClass" / f"{i}.png")
        Image.fromarray(np.where(mask == 255, 255, 7).astype(np.uint8)).save(voc / "SegmentationClassAug" / f"{i}.png")
    (voc / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids_train) + "\n")
    (voc / "ImageSets/Segmentation/val.txt").write_text("\n".join(ids_val) + "\n")
    (voc / "ImageSets/SegmentationAug/trainaug.txt").write_text("\n".join((*ids_train, "2008_000002")) + "\n")
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(voc / "JPEGImages" / "2008_000002.jpg")
    Image.fromarray(np.full((h, w), 3, np.uint8)).save(voc / "SegmentationClassAug" / "2008_000002.png")
    return root


def write_ade(root: Path, n: int = 2) -> Path:
    """ADEChallengeData2016 with raw labels 0 (other) .. 150."""
    ade = root / "ADEChallengeData2016"
    rng = np.random.default_rng(2)
    for split in ("training", "validation"):
        (ade / "images" / split).mkdir(parents=True)
        (ade / "annotations" / split).mkdir(parents=True)
        for i in range(n):
            stem = f"ADE_{split[:5]}_{i:08d}"
            Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(ade / "images" / split / f"{stem}.jpg")
            raw = np.zeros((24, 32), np.uint8)
            raw[:, 8:16], raw[:, 16:24], raw[:, 24:] = 1, 150, 13
            Image.fromarray(raw).save(ade / "annotations" / split / f"{stem}.png")
    return root


def leftovers(folder: Path) -> list[str]:
    """Temporary or lock files an interrupted write would leave anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith((".tmp", ".lock")))


def rotated_jpeg(upright: np.ndarray, path: Path, orientation: int = 6) -> None:
    """``upright (H, W, 3)`` stored as a camera does: pixels turned, EXIF orientation 6 or 8 saying how to
    turn them back (6: rotate 90° clockwise to display, 8: 90° counter-clockwise)."""
    turn = Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(upright).transpose(turn).save(path, quality=95, exif=exif)


@contextmanager
def unwritable(folder: Path):
    """Make ``folder`` refuse new files while the block runs: ``chmod 555``, or for root (who ignores
    modes) ``chattr +i``; skips the test where neither works."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)],
                                                        capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr +i: cannot make a folder unwritable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    return write_folder_dataset(tmp_path / "blocks")
