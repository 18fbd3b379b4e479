"""Whole command-line runs as a user makes them, timed in fresh processes (for the benchmark scripts).

``run_cli(["build-memory", ...])`` → wall seconds of ``python -m hummingbird build-memory ...`` (start-up,
model load, everything); ``timed_process(argv)`` the same for any command line run from this checkout;
``voc_subset(root, tmp, 100, 50)`` writes id files of the first train and val ids; ``spread`` summarises
repeated runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_process(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds and result of one fresh process ``argv`` importing this checkout (must exit 0)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])} ... failed:\n{done.stderr[-2000:]}")
    return seconds, done


def run_cli(argv: list[str]) -> float:
    """Wall seconds of one ``python -m hummingbird ...`` process run from this checkout (must exit 0)."""
    return timed_process([sys.executable, "-m", "hummingbird", *argv])[0]


def voc_subset(root: Path, folder: Path, train_images: int, val_images: int) -> tuple[Path, Path, list[str]]:
    """Id files of the first ``train_images`` train and ``val_images`` val ids of a VOC root, written in
    ``folder``: ``(train.txt, val.txt, val ids)``."""
    listing = Path(root) / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation"
    files = []
    for split, count in (("train", train_images), ("val", val_images)):
        ids = (listing / f"{split}.txt").read_text().split()[:count]
        (folder / f"{split}.txt").write_text("\n".join(ids) + "\n")
        files.append(ids)
    return folder / "train.txt", folder / "val.txt", files[1]


def spread(seconds: list[float], images: int) -> dict:
    """Seconds per image of repeated whole runs over ``images`` images: mean, each run, and the spread
    (max − min) / mean."""
    per = [s / images for s in seconds]
    mean = statistics.mean(per)
    return {"s_per_image": round(mean, 4), "runs_s_per_image": [round(p, 4) for p in per],
            "spread": round((max(per) - min(per)) / mean, 3)}
