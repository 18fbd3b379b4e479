"""Search indexes stored beside their bank, so that querying a bank never re-trains its search.

Searches that are trained — the clustered search's partitions (k-means centroids ``(nlist, D)`` and
each row's partition ``(N,)``) and approximate faiss indexes (``IVF…``, ``HNSW…``: the serialised
index) — are written to ``<bank>.index/<search>.safetensors`` with

* the checksum of the bank's content they were built for: a saved bank's tensor checksum; a sharded
  bank's shards' own checksums, in order (:meth:`~hummingbird.memory.shards.ShardedBank.content_checksum`),
  so a bank rebuilt in place from other images is never searched with the old index, whatever its
  manifest says;
* a BLAKE2b checksum of the index's own tensors, verified before the index is used.

Exact searches train nothing and are not stored. A stored index built for another version of the bank
is stale: it is rebuilt (a note when asked for) and replaced. A damaged one — a checksum that
does not match, an unreadable file, partitions that do not fit the bank — is named in a warning and
rebuilt, never used. Writes are atomic; a bank folder that cannot be written to still works (the index
is then rebuilt each time, with a warning saying why).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from hummingbird.errors import BankError, note, warn
from hummingbird.files.tensorfile import read_tensor_file, write_tensor_file
from hummingbird.memory.bank import MemoryBank, tensors_checksum
from hummingbird.memory.faiss_index import EXACT as FAISS_EXACT
from hummingbird.memory.search import CLUSTERED_SEARCH, EXACT_SEARCH, ClusteredSearch

FORMAT_VERSION = 2  # 2: the index's own checksum; a sharded bank identified by its shards' checksums
KEY = "hummingbird_search_index"


class DamagedIndex(Exception):
    """A stored index that cannot be trusted (message: why)."""


def index_folder(bank_path: str | Path) -> Path:
    """``<bank>.index``: the folder beside a bank (file or sharded folder) holding its searches."""
    bank_path = Path(bank_path)
    return bank_path.with_name(bank_path.name + ".index")


def bank_checksum(bank) -> str | None:
    """The checksum that identifies a bank's rows: a saved bank's tensor checksum; a sharded bank's shards'
    own checksums (:meth:`~hummingbird.memory.shards.ShardedBank.content_checksum`)."""
    if isinstance(bank, MemoryBank):
        return bank.metadata.get("checksum")
    return bank.content_checksum()


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
    """Write a trained search atomically with its own checksum; ``False`` (with a warning) when the folder
    is not writable."""
    from hummingbird.errors import OutputError

    meta = {"format_version": FORMAT_VERSION, "bank_checksum": checksum, "rows": rows}
    if isinstance(index, ClusteredSearch):
        tensors, meta["kind"] = index.state(), CLUSTERED_SEARCH
    else:
        import faiss

        if getattr(index, "on_gpu", False):
            return False
        tensors = {"faiss": torch.from_numpy(faiss.serialize_index(index.index).copy())}
        meta.update(kind="faiss", spec=index.spec)
    meta["index_checksum"] = tensors_checksum(tensors)
    try:
        write_tensor_file(path, tensors, KEY, meta)
    except (OSError, OutputError) as exc:
        warn(f"cannot store the search index at {path} ({getattr(exc, 'strerror', None) or exc}); it will be "
             f"trained again next time")
        return False
    return True


def read_index(path: Path, checksum: str, rows: int) -> tuple[dict | None, str | None, bool]:
    """``(tensors, None, False)`` of a stored search that fits the bank, else ``(None, why not, damaged)``:
    ``damaged`` when the file cannot be trusted, not when it is merely stale."""
    if not path.is_file():
        return None, None, False
    try:
        tensors, meta = read_tensor_file(path, KEY, "search index")
    except BankError as exc:
        return None, f"unreadable ({exc})", True
    if meta.get("format_version") != FORMAT_VERSION or "index_checksum" not in meta:
        return None, "stale (written by an earlier version, without a checksum of its own)", False
    if meta.get("bank_checksum") != checksum or meta.get("rows") != rows:
        return None, "stale (built for another version of the bank)", False
    if tensors_checksum(tensors) != meta["index_checksum"]:
        return None, "damaged (its contents do not match their checksum)", True
    return tensors, None, False


def load_or_build(bank, bank_path: str | Path | None, spec: str, build, seed: int = 0, train_size: int = 262_144,
                  device: str | torch.device = "cpu", nprobe: int | None = None, use_gpu: bool | str = "auto",
                  refine: int = 1, verbose: bool = False):
    """The search ``spec`` over ``bank`` (saved at ``bank_path``): read from the bank's index folder when
    stored there for this very bank and intact, else ``build()`` and store it. Exact searches are just
    built. ``verbose``: notes on stderr when an index is trained (a damaged one is always warned of)."""
    checksum = bank_checksum(bank) if bank_path is not None else None
    if not is_stored(spec) or checksum is None:
        return build()
    path = index_file(bank_path, spec, seed, train_size)
    tensors, problem, damaged = read_index(path, checksum, len(bank))
    if tensors is not None:
        try:
            return _restore(bank, spec, tensors, device, nprobe, seed, use_gpu, refine)
        except DamagedIndex as exc:
            problem, damaged = f"damaged ({exc})", True
    if damaged:
        warn(f"search index {path} is {problem}; rebuilding it")
    elif problem:
        note(f"search index {path} is {problem}; rebuilding it", verbose)
    else:
        note(f"training the {spec} search of {len(bank):,} patches once; stored in {path.parent}", verbose)
    index = build()
    save_index(index, path, checksum, len(bank))
    return index


def store(index, bank, bank_path: str | Path, spec: str, seed: int = 0, train_size: int = 262_144) -> bool:
    """Store an already built search of ``bank`` (just saved at ``bank_path``)."""
    if not is_stored(spec):
        return False
    return save_index(index, index_file(bank_path, spec, seed, train_size), bank_checksum(bank), len(bank))


def _restore(bank, spec: str, tensors: dict, device, nprobe, seed, use_gpu, refine):
    """The stored search over ``bank``; :class:`DamagedIndex` when its tensors do not fit the bank."""
    chunks = [bank.features] if isinstance(bank, MemoryBank) else list(bank.feature_chunks())
    if spec == CLUSTERED_SEARCH:
        centroids, assignment = tensors.get("centroids"), tensors.get("assignment")
        if centroids is None or assignment is None:
            raise DamagedIndex("centroids or partition numbers missing")
        if centroids.ndim != 2 or centroids.shape[1] != bank.dim or not bool(torch.isfinite(centroids).all()):
            raise DamagedIndex(f"centroids of shape {tuple(centroids.shape)} for {bank.dim}-d features")
        if assignment.shape != (len(bank),) or assignment.is_floating_point() or (
                len(assignment) and not (0 <= int(assignment.min()) and int(assignment.max()) < len(centroids))):
            raise DamagedIndex(f"partition numbers outside 0..{len(centroids) - 1} or not one per row")
        return ClusteredSearch(chunks, device, nprobe=nprobe, seed=seed, centroids=centroids, assignment=assignment)
    import faiss

    from hummingbird.memory.faiss_index import NeighbourIndex
    from hummingbird.memory.rows import RowGather

    index = NeighbourIndex(bank.dim, spec, nprobe=64 if nprobe is None else nprobe, use_gpu=False, seed=seed,
                           refine=refine)
    try:
        index.index = faiss.deserialize_index(np.ascontiguousarray(tensors["faiss"].numpy()))
    except (KeyError, RuntimeError) as exc:
        raise DamagedIndex(f"faiss cannot read it: {str(exc).splitlines()[-1] if str(exc) else exc}") from None
    if index.index.ntotal != len(bank) or index.index.d != bank.dim:
        raise DamagedIndex(f"{index.index.ntotal} rows of {index.index.d} dims for a bank of {len(bank)} x {bank.dim}")
    index._set_search_params()
    return index.keep_raw(bank.features if isinstance(bank, MemoryBank) else RowGather(chunks))
