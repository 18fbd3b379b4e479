"""Starting ``hummingbird label`` as a real server process for the label app's tests, and calling its HTTP API."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["background", "aeroplane", "person", "chair"]


def voc_photos(voc: Path, folder: Path, count: int) -> list[str]:
    """Copy the first ``count`` real VOC train images into ``folder``; their ids."""
    voc = next(c for c in (voc, voc / "VOC2012", voc / "VOCdevkit" / "VOC2012") if (c / "JPEGImages").is_dir())
    ids = (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split()[:count]
    folder.mkdir(parents=True, exist_ok=True)
    for i in ids:
        shutil.copyfile(voc / "JPEGImages" / f"{i}.jpg", folder / f"{i}.jpg")
    return ids


def voc_mask(voc: Path, image_id: str) -> np.ndarray:
    """The real VOC mask of ``image_id`` mapped onto :data:`CLASSES` (other classes unlabelled)."""
    voc = next(c for c in (voc, voc / "VOC2012", voc / "VOCdevkit" / "VOC2012") if (c / "JPEGImages").is_dir())
    raw = np.array(Image.open(voc / "SegmentationClass" / f"{image_id}.png"))
    out = np.full(raw.shape, 255, np.uint8)
    for voc_index, ours in ((0, 0), (1, 1), (15, 2), (9, 3)):
        out[raw == voc_index] = ours
    return out


def png_bytes(values: np.ndarray, mode: str = "L") -> bytes:
    out = io.BytesIO()
    Image.fromarray(values.astype(np.uint8)).convert(mode).save(out, format="PNG")
    return out.getvalue()


class LabelServer:
    """``hummingbird label`` in a subprocess; :meth:`call` speaks its API with the token."""

    def __init__(self, photos: Path, classes: Path, weights: tuple[str, Path], *extra: str, token: str = "test-token"):
        self.token = token
        command = [sys.executable, "-m", "hummingbird", "label", str(photos), "--classes", str(classes),
                   "--backbone", weights[0], "--weights", str(weights[1]), "--input-size", "224", "--port", "0",
                   "--token", token, "--no-progress", *extra]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.process.stdout.readline().strip()
        if not line.startswith("http://"):
            self.process.kill()
            raise AssertionError(f"no URL printed: {line!r}; stderr: {self.process.stderr.read()[-2000:]}")
        self.url = line
        self.base = line.split("/?")[0]

    def call(self, method: str, path: str, data: bytes | None = None, headers: dict | None = None,
             token: bool = True):
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read(), {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), {k.lower(): v for k, v in exc.headers.items()}

    def json(self, method: str, path: str, payload=None):
        status, body, _ = self.call(method, path, json.dumps(payload).encode() if payload is not None else None,
                                    {"Content-Type": "application/json"})
        return status, json.loads(body)

    def labels(self, path: str) -> np.ndarray:
        status, body, _ = self.call("GET", path)
        assert status == 200, body
        return np.array(Image.open(io.BytesIO(body)))

    def stop(self, kill: bool = False) -> None:
        if self.process.poll() is None:
            (self.process.kill if kill else self.process.terminate)()
            self.process.wait(30)
        self.process.stdout.close()
        self.process.stderr.close()


def wait_until(condition, timeout: float = 60, step: float = 0.2):
    ended = time.time() + timeout
    while time.time() < ended:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out waiting")
