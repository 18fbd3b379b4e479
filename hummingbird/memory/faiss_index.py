"""Nearest-neighbour search over memory features with faiss (inner product = cosine on unit vectors)."""

from __future__ import annotations

import faiss
import numpy as np
import torch

from hummingbird.errors import ConfigError, option

EXACT = "Flat"


class NeighbourIndex:
    """A faiss inner-product index over ``(N, D)`` unit features.

    Args:
        dim: feature dimension ``D``.
        spec: faiss factory string: ``"Flat"`` (exact, default), or approximate such as
            ``"IVF4096,PQ64"``, ``"OPQ64,IVF4096,PQ64"``, ``"HNSW32"``.
        nprobe: IVF lists visited per query (also used as HNSW ``efSearch`` when given).
        train_size: vectors sampled to train approximate indexes.
        refine: for approximate indexes, fetch ``refine × k`` candidates and re-rank them exactly
            against the raw features given to :meth:`keep_raw` (1: no re-ranking).
        use_gpu: ``"auto"`` (GPU when faiss-gpu sees one; sharded across all visible GPUs), ``True`` or
            ``False``.
        seed: seed of the training sample.
    """

    def __init__(self, dim: int, spec: str = EXACT, nprobe: int = 64, train_size: int = 262_144,
                 use_gpu: bool | str = "auto", seed: int = 0, refine: int = 1):
        try:
            index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ConfigError(f"{option('index', spec)} is not a faiss factory string for dimension {dim} "
                              f"({str(exc).splitlines()[-1] if str(exc) else exc})") from exc
        self.dim, self.spec, self.nprobe = dim, spec, nprobe
        self.train_size, self.seed, self.refine = train_size, seed, refine
        self.raw = None
        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        if use_gpu is True and gpus == 0:
            raise ConfigError("a GPU faiss index was asked for (use_gpu=True) but faiss sees no GPU (install the 'gpu' extra)")
        self.on_gpu = bool(use_gpu) and gpus > 0
        if self.on_gpu:  # shard the index across all GPUs (each holds 1/n of the memory)
            options = faiss.GpuMultipleClonerOptions()
            options.shard = True
            index = faiss.index_cpu_to_all_gpus(index, co=options)
        self.index = index
        self._set_search_params()

    def _set_search_params(self) -> None:
        params = faiss.GpuParameterSpace() if self.on_gpu else faiss.ParameterSpace()
        if "IVF" in self.spec:
            params.set_index_parameter(self.index, "nprobe", self.nprobe)
        if "HNSW" in self.spec and not self.on_gpu:
            params.set_index_parameter(self.index, "efSearch", max(self.nprobe, 64))

    def train(self, sample: torch.Tensor | np.ndarray) -> "NeighbourIndex":
        """Train an approximate index on ``(n, D)`` sample vectors (no-op for exact indexes)."""
        if not self.index.is_trained:
            self.index.train(np.ascontiguousarray(_as_float32(sample)))
        return self

    def add(self, features: torch.Tensor | np.ndarray, batch_size: int = 262_144) -> "NeighbourIndex":
        """Add ``(N, D)`` features (training the index on a sample of them first if it is untrained).
        Features may be a memory map; they are converted to float32 one batch at a time."""
        if features.shape[1] != self.dim:
            raise ConfigError(f"features have dimension {features.shape[1]}, index expects {self.dim}")
        if not self.index.is_trained:
            rng = np.random.default_rng(self.seed)
            take = min(self.train_size, len(features))
            self.train(features[np.sort(rng.choice(len(features), take, replace=False))])
        for start in range(0, len(features), batch_size):
            self.index.add(np.ascontiguousarray(_as_float32(features[start:start + batch_size])))
        return self

    def keep_raw(self, rows) -> "NeighbourIndex":
        """Raw features for exact re-ranking: anything indexable by a ``(Q, m)`` LongTensor of rows that
        returns ``(Q, m, D)`` (a tensor, or a memory-mapped :class:`~hummingbird.memory.shards.RowGather`)."""
        self.raw = rows
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
        rerank = self.refine > 1 and self.raw is not None and self.spec != EXACT
        if rerank:  # bound the (batch, refine·k, D) candidate block to ~256 MB
            batch_size = max(1, min(batch_size, (1 << 26) // (self.refine * k * self.dim)))
        for start in range(0, len(vectors), batch_size):
            stop = start + batch_size
            chunk = np.ascontiguousarray(vectors[start:stop])
            if rerank:
                sims[start:stop], ids[start:stop] = self._reranked(chunk, k)
            else:
                sims[start:stop], ids[start:stop] = self.index.search(chunk, k)
        return torch.from_numpy(sims), torch.from_numpy(ids)

    def _reranked(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k among the approximate index's ``refine × k`` candidates."""
        wide = min(self.refine * k, len(self))
        _, candidates = self.index.search(queries, wide)
        candidates = torch.from_numpy(candidates)
        valid = candidates >= 0
        raw = self.raw[candidates.clamp_min(0)]
        exact = torch.einsum("qd,qmd->qm", torch.from_numpy(queries), raw.float())
        exact = exact.masked_fill(~valid, -torch.inf)
        top = exact.topk(k, dim=1)
        return top.values.numpy(), torch.gather(candidates, 1, top.indices).numpy()


def _as_float32(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    return np.asarray(x, dtype=np.float32)
