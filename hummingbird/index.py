"""Nearest-neighbour search over memory features with faiss (inner product = cosine on unit vectors)."""

from __future__ import annotations

import faiss
import numpy as np
import torch

from hummingbird.errors import ConfigError

EXACT = "Flat"


class NeighbourIndex:
    """A faiss inner-product index over ``(N, D)`` unit features.

    Args:
        dim: feature dimension ``D``.
        spec: faiss factory string: ``"Flat"`` (exact, default), or approximate such as
            ``"IVF4096,PQ64"``, ``"OPQ64,IVF4096,PQ64"``, ``"HNSW32"``.
        nprobe: IVF lists visited per query (also used as HNSW ``efSearch`` when given).
        train_size: vectors sampled to train approximate indexes.
        use_gpu: ``"auto"`` (GPU when faiss-gpu sees one), ``True`` or ``False``.
        seed: seed of the training sample.
    """

    def __init__(self, dim: int, spec: str = EXACT, nprobe: int = 64, train_size: int = 262_144,
                 use_gpu: bool | str = "auto", seed: int = 0):
        try:
            index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ConfigError(f"--index {spec!r} is not a faiss factory string for dimension {dim} "
                              f"({str(exc).splitlines()[-1] if str(exc) else exc})") from exc
        self.dim, self.spec, self.nprobe = dim, spec, nprobe
        self.train_size, self.seed = train_size, seed
        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        if use_gpu is True and gpus == 0:
            raise ConfigError("--index-gpu was asked for but faiss sees no GPU (install the 'gpu' extra)")
        self.on_gpu = bool(use_gpu) and gpus > 0
        self.index = faiss.index_cpu_to_all_gpus(index) if self.on_gpu else index
        self._set_search_params()

    def _set_search_params(self) -> None:
        params = faiss.GpuParameterSpace() if self.on_gpu else faiss.ParameterSpace()
        if "IVF" in self.spec:
            params.set_index_parameter(self.index, "nprobe", self.nprobe)
        if "HNSW" in self.spec and not self.on_gpu:
            params.set_index_parameter(self.index, "efSearch", max(self.nprobe, 64))

    def add(self, features: torch.Tensor | np.ndarray, batch_size: int = 1_000_000) -> "NeighbourIndex":
        """Add ``(N, D)`` features (training the index on a sample first if it needs training)."""
        vectors = _as_float32(features)
        if vectors.shape[1] != self.dim:
            raise ConfigError(f"features have dimension {vectors.shape[1]}, index expects {self.dim}")
        if not self.index.is_trained:
            rng = np.random.default_rng(self.seed)
            take = min(self.train_size, len(vectors))
            sample = vectors[np.sort(rng.choice(len(vectors), take, replace=False))]
            self.index.train(np.ascontiguousarray(sample))
        for start in range(0, len(vectors), batch_size):
            self.index.add(np.ascontiguousarray(vectors[start:start + batch_size]))
        return self

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, queries: torch.Tensor | np.ndarray, k: int,
               batch_size: int = 65_536) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` nearest memory rows of each query ``(Q, D)`` → similarities ``(Q, k)`` float32 and
        indices ``(Q, k)`` int64, most similar first."""
        if k > len(self):
            raise ConfigError(f"k={k} neighbours asked for but the memory holds only {len(self)} patches")
        vectors = _as_float32(queries)
        sims = np.empty((len(vectors), k), dtype=np.float32)
        ids = np.empty((len(vectors), k), dtype=np.int64)
        for start in range(0, len(vectors), batch_size):
            stop = start + batch_size
            sims[start:stop], ids[start:stop] = self.index.search(np.ascontiguousarray(vectors[start:stop]), k)
        return torch.from_numpy(sims), torch.from_numpy(ids)


def _as_float32(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    return np.asarray(x, dtype=np.float32)
