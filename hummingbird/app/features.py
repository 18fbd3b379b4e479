"""Query features computed once per image and kept on disk: the memory changes with every stroke, an image's
features never do, so labelling an image again costs a neighbour search, not a forward pass.

Features live in ``<state>/features/<pipeline>/<id>.npy`` (``<pipeline>``: a digest of everything that makes
them — backbone, weights, layer, input size, precision ...), written atomically. A background thread computes
the missing ones (the first pass, with progress) while requests that need one image now compute it at once,
ahead of the queue; the two share one lock around the backbone, so painting never waits for more than one
forward pass.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from hummingbird.files.atomic import atomic_path, make_folder


def pipeline_digest(metadata: dict) -> str:
    """A short digest of a pipeline's record (what its features depend on)."""
    text = json.dumps(metadata, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class FeatureCache:
    """Features of images by id, on disk in ``folder`` and the ``keep`` most recently used in memory;
    ``encode(id) → (h, w, D)`` computes one."""

    def __init__(self, folder: Path, encode: Callable[[str], torch.Tensor], keep: int = 256):
        from hummingbird.app.state import remove_leftovers

        self.folder = make_folder(folder)
        remove_leftovers(self.folder)
        self._encode = encode
        self._memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._keep = keep
        self._memory_lock = threading.Lock()
        self._encoder_lock = threading.Lock()
        self.progress = {"done": 0, "total": 0, "seconds": 0.0, "running": False}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _path(self, image_id: str) -> Path:
        return self.folder / f"{image_id}.npy"

    def cached(self, image_id: str) -> bool:
        return image_id in self._memory or self._path(image_id).is_file()

    def get(self, image_id: str) -> torch.Tensor:
        """The image's features: from memory, else from disk, else computed now (and stored)."""
        with self._memory_lock:
            feats = self._memory.get(image_id)
            if feats is not None:
                self._memory.move_to_end(image_id)
                return feats
        path = self._path(image_id)
        if path.is_file():
            try:
                feats = torch.from_numpy(np.load(path))
            except (OSError, ValueError):
                feats = None  # unreadable (never partial: writes are atomic; damaged elsewhere): computed again
                path.unlink(missing_ok=True)
        if feats is None:
            with self._encoder_lock:
                if image_id in self._memory or path.is_file():  # another thread encoded it meanwhile
                    return self.get(image_id)
                feats = self._encode(image_id).float().contiguous()
                with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                    np.save(handle, feats.numpy())
        with self._memory_lock:
            self._memory[image_id] = feats
            while len(self._memory) > self._keep:  # the rest are read from disk again (about 1 ms each)
                self._memory.popitem(last=False)
        return feats

    def start_first_pass(self, image_ids: list[str]) -> None:
        """Compute the missing features of ``image_ids`` in a background thread (progress in :attr:`progress`)."""
        todo = [i for i in image_ids if not self.cached(i)]
        self.progress.update(done=len(image_ids) - len(todo), total=len(image_ids), seconds=0.0, running=bool(todo),
                             encoded=0)
        if not todo:
            return

        def run():
            started = time.perf_counter()
            for image_id in todo:
                if self._stop.is_set():
                    break
                try:
                    self.get(image_id)
                except Exception as exc:  # noqa: BLE001 - one unreadable image must not stop the pass
                    self.progress.setdefault("errors", []).append(f"{image_id}: {exc}")
                self.progress["done"] += 1
                self.progress["encoded"] += 1
                self.progress["seconds"] = round(time.perf_counter() - started, 3)
            self.progress["running"] = False

        self._thread = threading.Thread(target=run, name="hummingbird-first-pass", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
