"""Memory banks larger than RAM: a folder of shard files written as they are produced.

A sharded bank is a folder::

    manifest.json                       metadata, shard list (in order), rows, written last
    shard_e000_i0000000.safetensors     an ordinary bank file: images [0, S) of epoch 0
    shard_e000_i0000256.safetensors     images [S, 2S) of epoch 0, ...

Each shard is written atomically as soon as its images are encoded, so an interrupted build resumes
from the shards already on disk; under ``torchrun`` each rank writes every ``world``-th shard and rank 0
writes the manifest. Shards are read memory-mapped (the safetensors layout is a JSON header followed by
raw arrays), so index training, filling and label look-ups never hold the whole bank in RAM.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from hummingbird.errors import BankError
from hummingbird.files.atomic import write_json
from hummingbird.files.textfiles import read_text
from hummingbird.memory.bank import (
    COMPATIBILITY_FIELDS,
    MemoryBank,
    check_metadata,
    non_finite_message,
    non_finite_rows,
    upgrade_metadata,
)
from hummingbird.memory.rows import RowGather  # noqa: F401 (re-exported)

MANIFEST = "manifest.json"
_NUMPY_DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "U8": np.uint8}


def read_header(path: str | Path) -> tuple[dict, int]:
    """The JSON header of a ``.safetensors`` file (tensor names, dtypes, shapes, offsets, ``__metadata__``)
    and its length in bytes (the tensors start 8 bytes after it)."""
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        return json.loads(handle.read(header_len)), header_len


def shard_checksum(path: str | Path) -> str | None:
    """The tensor checksum a shard (an ordinary bank file) recorded when it was written (read from its
    header, no tensor read); ``None`` when it has none."""
    try:
        record = json.loads(read_header(path)[0].get("__metadata__", {}).get("hummingbird", "{}"))
    except (OSError, ValueError, struct.error):
        return None
    return record.get("checksum")


def mmap_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """Read-only memory maps of every tensor of a ``.safetensors`` file (no copy into RAM)."""
    path = Path(path)
    header, header_len = read_header(path)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = np.dtype(_NUMPY_DTYPES[info["dtype"]])
        shape = tuple(info["shape"])
        if end - start == 0:
            out[name] = np.zeros(shape, dtype)
        else:
            out[name] = np.memmap(path, dtype=dtype, mode="r", offset=8 + header_len + start, shape=shape)
    return out


def shard_name(epoch: int, start: int) -> str:
    return f"shard_e{epoch:03d}_i{start:07d}.safetensors"


def shard_plan(num_images: int, epochs: int, shard_images: int) -> list[tuple[int, int, int]]:
    """Shards in bank order: ``(epoch, first image, end image)``."""
    return [(e, s, min(s + shard_images, num_images)) for e in range(epochs) for s in range(0, num_images, shard_images)]


def write_manifest(out_dir: str | Path, num_images: int, augmentation_epochs: int, shard_images: int) -> Path:
    """Check that every planned shard exists and write the manifest (the bank's metadata is the first
    shard's, without its shard-specific fields)."""
    out_dir = Path(out_dir)
    plan = shard_plan(num_images, augmentation_epochs, shard_images)
    names = [shard_name(e, s) for e, s, _ in plan]
    missing = [n for n in names if not (out_dir / n).is_file()]
    if missing:
        raise BankError(f"{out_dir}: {len(missing)} shards are missing ({', '.join(missing[:3])}); run the build again "
                        f"to finish them")
    shards = []
    for name in names:
        arrays = mmap_tensors(out_dir / name)
        shards.append({"file": name, "rows": int(arrays["features"].shape[0])})
    meta = dict(MemoryBank.load(out_dir / names[0]).metadata)
    for key in ("shard", "num_patches", "checksum", "build_seconds"):
        meta.pop(key, None)
    meta.update(num_patches=sum(s["rows"] for s in shards), shard_images=shard_images)
    return write_json(out_dir / MANIFEST, {"format_version": 1, "metadata": meta, "shards": shards})


class ShardedBank:
    """A sharded bank opened read-only: metadata from the manifest, arrays memory-mapped."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        manifest = self.directory / MANIFEST
        if not manifest.is_file():
            raise BankError(f"{self.directory}: no {MANIFEST} (an unfinished sharded build? run it again to resume)")
        try:
            data = json.loads(read_text(manifest, "sharded bank manifest", BankError))
        except json.JSONDecodeError as exc:
            raise BankError(f"{manifest}: not a valid sharded bank manifest ({exc})") from exc
        self.metadata = upgrade_metadata(data["metadata"])
        self.shard_files = [self.directory / s["file"] for s in data["shards"]]
        arrays = [mmap_tensors(p) for p in self.shard_files]
        for p, a, s in zip(self.shard_files, arrays, data["shards"]):
            if a["features"].shape[0] != s["rows"]:
                raise BankError(f"{p}: shard has {a['features'].shape[0]} rows, manifest says {s['rows']}")
        self._features = [a["features"] for a in arrays]
        self.labels = RowGather([a["labels"] for a in arrays])

    def __len__(self) -> int:
        return len(self.labels)

    def content_checksum(self) -> str:
        """BLAKE2b over the shards in order: each one's file name, rows and its own tensor checksum (recorded
        when it was written). Identifies the bank's rows: a shard rebuilt from other images changes it,
        even where the manifest comes out byte for byte the same."""
        digest = hashlib.blake2b(digest_size=32)
        for path, features in zip(self.shard_files, self._features):
            checksum = shard_checksum(path) or f"size:{path.stat().st_size}:mtime:{path.stat().st_mtime_ns}"
            digest.update(f"{path.name}\0{len(features)}\0{checksum}\n".encode())
        return "blake2b:" + digest.hexdigest()

    @property
    def dim(self) -> int:
        return int(self._features[0].shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.labels.parts[0].shape[1])

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata.get("class_names") or [f"class_{i}" for i in range(self.num_classes)])

    def feature_chunks(self) -> Iterator[np.ndarray]:
        """Each shard's ``(n, D)`` features (memory-mapped), checked for NaN and infinite values as they are
        read (:class:`BankError` naming the shard and rows)."""
        for path, features in zip(self.shard_files, self._features):
            rows = non_finite_rows(features)
            if len(rows):
                raise BankError(non_finite_message(path, rows, len(features)) + "; the bank is unusable; delete "
                                "this shard and run the build again to redo it")
            yield features

    def check_compatible(self, pipeline: dict, source: str = "memory bank") -> None:
        check_metadata(self.metadata, pipeline, COMPATIBILITY_FIELDS, source)

    def to_memory(self) -> MemoryBank:
        """All shards in one in-memory :class:`MemoryBank` (view indices renumbered)."""
        banks = [MemoryBank.load(p) for p in self.shard_files]
        offsets = np.cumsum([0] + [len(b.views) for b in banks[:-1]])
        sources = [torch.cat([b.sources[:, :1] + int(o), b.sources[:, 1:]], 1) for b, o in zip(banks, offsets)]
        return MemoryBank(torch.cat([b.features for b in banks]), torch.cat([b.labels for b in banks]),
                          torch.cat(sources), torch.cat([b.views for b in banks]), dict(self.metadata))


def open_bank(path: str | Path) -> MemoryBank | ShardedBank:
    """A bank file, or a sharded bank folder."""
    return ShardedBank(path) if Path(path).is_dir() else MemoryBank.load(path)
