"""Search indexes stored beside their bank, so that querying a bank never re-trains its search.

Searches that are trained — the clustered search's partitions (k-means centroids ``(nlist, D)`` and
each row's partition ``(N,)``) and approximate faiss indexes (``IVF…``, ``HNSW…``: the serialised
index) — are written to ``<bank>.index/<search>.safetensors`` with the checksum of the bank they were
built for. Exact searches train nothing and are not stored. A stored index whose checksum differs
from its bank's (the bank was rebuilt or grown) is stale: it is rebuilt, with a message, and replaced.
Writes are atomic; a bank folder that cannot be written to still works (the index is then rebuilt
each time, with a message saying why).
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import numpy as np
import torch

from hummingbird.errors import BankError
from hummingbird.files.tensorfile import read_tensor_file, write_tensor_file
from hummingbird.memory.bank import MemoryBank
from hummingbird.memory.faiss_index import EXACT as FAISS_EXACT
from hummingbird.memory.search import CLUSTERED_SEARCH, EXACT_SEARCH, ClusteredSearch

FORMAT_VERSION = 1
KEY = "hummingbird_search_index"


def index_folder(bank_path: str | Path) -> Path:
    """``<bank>.index``: the folder beside a bank (file or sharded folder) holding its searches."""
    bank_path = Path(bank_path)
    return bank_path.with_name(bank_path.name + ".index")


def bank_checksum(bank) -> str | None:
    """The checksum that identifies a bank's rows: a saved bank's tensor checksum; a sharded bank's
    manifest (its shard list and row counts; shards are written once)."""
    if isinstance(bank, MemoryBank):
        return bank.metadata.get("checksum")
    manifest = Path(bank.directory) / "manifest.json"
    return "blake2b:" + hashlib.blake2b(manifest.read_bytes(), digest_size=32).hexdigest()


def is_stored(spec: str) -> bool:
    """Whether a search is trained (and so worth storing): clustered, or a faiss index other than Flat."""
    return spec not in (EXACT_SEARCH, FAISS_EXACT)


def index_file(bank_path: str | Path, spec: str, seed: int, train_size: int) -> Path:
    """The file of one search: its kind, the seed of its training and (faiss) its training sample size."""
    if spec == CLUSTERED_SEARCH:
        name = f"clustered-seed{seed}"
    else:
        name = f"faiss-{re.sub(r'[^A-Za-z0-9]+', '_', spec).strip('_')}-seed{seed}-train{train_size}"
    return index_folder(bank_path) / f"{name}.safetensors"


def save_index(index, path: Path, checksum: str, rows: int) -> bool:
    """Write a trained search atomically; ``False`` (with a message) when the folder is not writable."""
    meta = {"format_version": FORMAT_VERSION, "bank_checksum": checksum, "rows": rows}
    if isinstance(index, ClusteredSearch):
        tensors, meta["kind"] = index.state(), CLUSTERED_SEARCH
    else:
        import faiss

        if getattr(index, "on_gpu", False):
            return False
        tensors = {"faiss": torch.from_numpy(faiss.serialize_index(index.index).copy())}
        meta.update(kind="faiss", spec=index.spec)
    try:
        write_tensor_file(path, tensors, KEY, meta)
    except OSError as exc:
        print(f"note: cannot store the search index at {path} ({exc.strerror or exc}); it will be rebuilt "
              f"next time", file=sys.stderr)
        return False
    return True


def read_index(path: Path, checksum: str, rows: int) -> tuple[dict | None, str | None]:
    """``(tensors, None)`` of a stored search that fits the bank, else ``(None, why not)``."""
    if not path.is_file():
        return None, None
    try:
        tensors, meta = read_tensor_file(path, KEY, "search index")
    except BankError as exc:
        return None, f"unreadable ({exc})"
    if meta.get("bank_checksum") != checksum or meta.get("rows") != rows:
        return None, "stale (built for another version of the bank)"
    return tensors, None


def load_or_build(bank, bank_path: str | Path | None, spec: str, build, seed: int = 0, train_size: int = 262_144,
                  device: str | torch.device = "cpu", nprobe: int | None = None, use_gpu: bool | str = "auto",
                  refine: int = 1):
    """The search ``spec`` over ``bank`` (saved at ``bank_path``): read from the bank's index folder when
    stored there for this very bank, else ``build()`` and store it. Exact searches are just built."""
    checksum = bank_checksum(bank) if bank_path is not None else None
    if not is_stored(spec) or checksum is None:
        return build()
    path = index_file(bank_path, spec, seed, train_size)
    tensors, problem = read_index(path, checksum, len(bank))
    if tensors is not None:
        return _restore(bank, spec, tensors, device, nprobe, seed, use_gpu, refine)
    if problem:
        print(f"search index {path} is {problem}; rebuilding it", file=sys.stderr)
    else:
        print(f"training the {spec} search of {len(bank):,} patches once; stored in {path.parent}", file=sys.stderr)
    index = build()
    save_index(index, path, checksum, len(bank))
    return index


def store(index, bank, bank_path: str | Path, spec: str, seed: int = 0, train_size: int = 262_144) -> bool:
    """Store an already built search of ``bank`` (just saved at ``bank_path``)."""
    if not is_stored(spec):
        return False
    return save_index(index, index_file(bank_path, spec, seed, train_size), bank_checksum(bank), len(bank))


def _restore(bank, spec: str, tensors: dict, device, nprobe, seed, use_gpu, refine):
    chunks = [bank.features] if isinstance(bank, MemoryBank) else list(bank.feature_chunks())
    if spec == CLUSTERED_SEARCH:
        return ClusteredSearch(chunks, device, nprobe=nprobe, seed=seed, centroids=tensors["centroids"],
                               assignment=tensors["assignment"])
    import faiss

    from hummingbird.memory.faiss_index import NeighbourIndex
    from hummingbird.memory.rows import RowGather

    index = NeighbourIndex(bank.dim, spec, nprobe=64 if nprobe is None else nprobe, use_gpu=False, seed=seed,
                           refine=refine)
    index.index = faiss.deserialize_index(np.ascontiguousarray(tensors["faiss"].numpy()))
    index._set_search_params()
    return index.keep_raw(bank.features if isinstance(bank, MemoryBank) else RowGather(chunks))
