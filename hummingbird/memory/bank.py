"""The memory bank: L2-normalised patch features, their soft labels, and where they came from.

A bank is one ``.safetensors`` file: tensors ``features (N, D)``, ``labels (N, C)``, ``sources (N, 3)``
(view index, patch row, patch column) and ``views (V, 6)`` (dataset image index, then the source region
``top, left, height, width, flipped`` that the view showed), plus a JSON metadata
record of everything needed to reuse it (backbone, weights hash, input and patch size, feature
kind, dataset, classes, seed), a format version and a BLAKE2b checksum of the tensors, verified on
load. Files are written to a temporary name and renamed into place, so an interrupted write never
leaves a partial bank under the final name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hummingbird.errors import BankError
from hummingbird.files.tensorfile import read_tensor_file, write_tensor_file

FORMAT_VERSION = 2  # 2: records pos_embed, normalisation and protocol_preset
# Metadata fields that must agree between a bank and the pipeline that queries it.
COMPATIBILITY_FIELDS = ("backbone", "weights", "layer", "patch_size", "pos_embed", "normalisation", "feature_kind",
                        "feature_dim", "input_size", "fungi", "protocol_preset")


def with_legacy_encoder_fields(meta: dict) -> dict:
    """Metadata written before encoders recorded them, completed with what the encoder used then: timm's
    position-embedding resampling and the backbone's pretrained-config normalisation."""
    if "pos_embed" in meta and "normalisation" in meta:
        return meta
    from hummingbird.models.backbones import legacy_normalisation

    return {"pos_embed": "timm", "normalisation": legacy_normalisation(meta.get("backbone")), **meta}


def upgrade_metadata(meta: dict) -> dict:
    """Metadata of a version-1 bank completed with what its pipeline used then (see
    :func:`with_legacy_encoder_fields`) and the default protocol."""
    if meta.get("format_version", FORMAT_VERSION) >= 2:
        return meta
    return {"protocol_preset": "default", **with_legacy_encoder_fields(meta)}


def check_metadata(recorded: dict, pipeline: dict, fields: tuple[str, ...], source: str, what: str = "bank") -> None:
    """Raise :class:`BankError` naming ``source`` and every field of ``fields`` (present in ``pipeline``)
    where a file's ``recorded`` metadata differs from the pipeline that loads it."""
    diffs = [f"{k}: {what} has {recorded.get(k)!r}, pipeline has {pipeline[k]!r}"
             for k in fields if k in pipeline and recorded.get(k) != pipeline[k]]
    if diffs:
        raise BankError(f"{source}: {'' if what == 'bank' else what + ' '}built for another pipeline; "
                        + "; ".join(diffs))


def non_finite_rows(features, chunk_rows: int = 1 << 16) -> np.ndarray:
    """Indices of the rows of ``features (N, D)`` (a tensor or a memory-mapped array) that hold NaN or
    infinite values, checked ``chunk_rows`` at a time."""
    bad = [np.zeros(0, np.int64)]
    for start in range(0, len(features), chunk_rows):
        part = features[start:start + chunk_rows]
        finite = torch.isfinite(part).all(1).numpy() if isinstance(part, torch.Tensor) else np.isfinite(part).all(1)
        bad.append(np.flatnonzero(~finite) + start)
    return np.concatenate(bad)


def non_finite_message(source: str | Path, rows: np.ndarray, total: int) -> str:
    """``<source>: n of N feature rows hold NaN or infinite values (rows a, b, ...)``."""
    shown = ", ".join(map(str, rows[:5].tolist())) + (" ..." if len(rows) > 5 else "")
    return f"{source}: {len(rows)} of {total} feature rows hold NaN or infinite values (rows {shown})"


def tensors_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """BLAKE2b of the named tensors' raw bytes, in name order."""
    digest = hashlib.blake2b(digest_size=32)
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].contiguous().view(torch.uint8).numpy().data)
    return f"blake2b:{digest.hexdigest()}"


@dataclass
class MemoryBank:
    """Patch features ``(N, D)``, label distributions ``(N, C)``, sources ``(N, 3)`` int32 (view, row,
    column), views ``(V, 6)`` int32 (image index, top, left, height, width, flipped) and metadata."""

    features: torch.Tensor
    labels: torch.Tensor
    sources: torch.Tensor
    views: torch.Tensor
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        n = self.features.shape[0]
        if self.labels.shape[0] != n or self.sources.shape[0] != n:
            raise BankError(f"bank rows disagree: {n} features, {self.labels.shape[0]} labels, "
                            f"{self.sources.shape[0]} sources")

    def __len__(self) -> int:
        return self.features.shape[0]

    def image_index(self, rows: torch.Tensor | slice = slice(None)) -> torch.Tensor:
        """Dataset image index of memory rows ``rows``."""
        return self.views[self.sources[rows, 0].long(), 0]

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    def check_finite(self, source: str | Path, consequence: str) -> None:
        """Raise :class:`BankError` naming ``source``, the rows (and their images) whose features hold NaN
        or infinite values, followed by ``consequence``."""
        rows = non_finite_rows(self.features)
        if not len(rows):
            return
        ids = self.metadata.get("image_ids")
        images = ""
        if ids and len(self.views):
            seen = list(dict.fromkeys(self.image_index(torch.from_numpy(rows[:100])).tolist()))
            images = f"; images {', '.join(str(ids[i]) for i in seen[:5] if 0 <= i < len(ids))}"
        raise BankError(non_finite_message(source, rows, len(self)) + images + "; " + consequence)

    @property
    def num_classes(self) -> int:
        return self.labels.shape[1]

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata.get("class_names") or [f"class_{i}" for i in range(self.num_classes)])

    def save(self, path: str | Path) -> Path:
        """Write the bank atomically (temporary file, then rename); its metadata gains the format
        version, row count and checksum written (the checksum a stored search index refers to). A bank
        with non-finite features is refused, nothing written."""
        self.check_finite(path, "the backbone gave non-finite features (damaged weights? float16 overflow?); "
                                "the bank was not written")
        tensors = {"features": self.features.contiguous(), "labels": self.labels.contiguous(),
                   "sources": self.sources.contiguous(), "views": self.views.contiguous()}
        self.metadata.update(format_version=FORMAT_VERSION, num_patches=len(self), checksum=tensors_checksum(tensors))
        return write_tensor_file(path, tensors, "hummingbird", self.metadata)

    @classmethod
    def load(cls, path: str | Path) -> "MemoryBank":
        """Read a bank file; raises :class:`BankError` naming the file if it is missing or unreadable."""
        path = Path(path)
        tensors, meta = read_tensor_file(path, "hummingbird", "memory bank")
        if not {"features", "labels", "sources", "views"} <= tensors.keys():
            raise BankError(f"{path}: a safetensors file but not a hummingbird memory bank (tensors missing)")
        version = meta.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise BankError(f"{path}: bank has no valid format_version ({version!r})")
        if version > FORMAT_VERSION:
            raise BankError(f"{path}: bank format {version} is newer than this toolkit reads "
                            f"({FORMAT_VERSION}); upgrade hummingbird")
        expected, actual = meta.get("checksum"), tensors_checksum(tensors)
        if expected != actual:
            raise BankError(f"{path}: bank checksum mismatch (stored {str(expected)[:20]}…, computed "
                            f"{actual[:20]}…); the file is corrupted")
        bank = cls(tensors["features"], tensors["labels"], tensors["sources"], tensors["views"],
                   upgrade_metadata(meta))
        bank.check_finite(path, "the bank is unusable; build it again")
        return bank

    def check_compatible(self, pipeline: dict, source: str = "memory bank") -> None:
        """Raise :class:`BankError` listing every field where the bank and ``pipeline`` differ."""
        check_metadata(self.metadata, pipeline, COMPATIBILITY_FIELDS, source)
