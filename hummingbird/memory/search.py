"""Nearest-neighbour search over memory features in torch, on whatever device holds them.

Two searches, both returning ``k`` neighbours as ``(similarities (Q, k) float32, rows (Q, k) int64)``,
most similar first, on the searcher's device:

* :class:`ExactSearch` — every memory row is scored: chunked matrix products, then a top-``k``
  selection (faiss result heaps on the CPU, ``torch.topk`` elsewhere). With ``score_dtype=float16``
  (the CUDA default) rows are scored in half precision and a wider candidate list is re-ranked with
  exact float32 products; a query whose result the half-precision error bound cannot certify is
  searched again in float32, so the result is always the exact one.
* :class:`ClusteredSearch` — an inverted file searched with matrix products: memory rows are
  partitioned by spherical k-means (faiss), each query scores only the rows of its ``nprobe``
  nearest partitions, exactly (float32), so the similarities are exact and only rows in partitions
  not visited can be missed (recall is measured by ``eval/bench_hbird.py``).

:func:`auto_spec` picks one from the memory size and device (``--index auto``, the default); any
faiss factory string still selects :class:`~hummingbird.memory.faiss_index.NeighbourIndex`.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import faiss
import numpy as np
import torch

from hummingbird.memory.rows import RowGather

AUTO_SEARCH, EXACT_SEARCH, CLUSTERED_SEARCH = "auto", "exact", "clustered"  # --index values
FAISS_EXACT = "Flat"  # faiss's exact inner-product index (hummingbird.memory.faiss_index.NeighbourIndex)
# Memories with at least this many rows are searched with ClusteredSearch by `auto` on the CPU
# (measured with eval/bench_hbird.py --sweep-search: below it exact search costs little next to the
# backbone and k-means training would cost more than it saves).
CPU_CLUSTERED_FROM = 40_000
# On CUDA, half-precision exact search stays cheaper than the backbone up to far larger memories.
CUDA_CLUSTERED_FROM = 2_000_000
HALF_PRECISION_SLACK = 2e-3  # bound on |fp16 score - exact score| of unit vectors (ExactSearch._search_half)
BFLOAT16_SLACK = 4 * 2.0**-8  # the same for bfloat16 scores: four unit roundoffs (queries, rows, result, sums)
DEVICE_MEMORY_SHARE = 0.5  # at most this share of the free device memory holds the memory features


def _device(device: str | torch.device | None) -> torch.device:
    return torch.device(device if device is not None else "cpu")


def fits_on_device(num_bytes: int, device: str | torch.device) -> bool:
    """Whether ``num_bytes`` may be kept on ``device`` (always on the CPU; on CUDA at most
    :data:`DEVICE_MEMORY_SHARE` of the free memory)."""
    device = _device(device)
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return num_bytes <= DEVICE_MEMORY_SHARE * free


def auto_spec(num_rows: int, device: str | torch.device, num_bytes: int = 0) -> str:
    """The search ``--index auto`` uses for a memory of ``num_rows`` (``num_bytes`` of features) on
    ``device``: ``clustered`` from :data:`CPU_CLUSTERED_FROM` rows (CPU) / :data:`CUDA_CLUSTERED_FROM`
    (CUDA), exact search below — on CUDA :class:`ExactSearch` (half-precision scoring, exact
    re-ranking), on the CPU faiss's flat index (``Flat``: matrix products and result heaps like
    :class:`ExactSearch`, a little faster on one thread, and bit for bit the search of earlier
    versions). A memory that does not fit on the GPU is searched exactly, streamed block by block."""
    cuda = _device(device).type == "cuda"
    if cuda and num_bytes and not fits_on_device(num_bytes, device):
        return EXACT_SEARCH
    if num_rows >= (CUDA_CLUSTERED_FROM if cuda else CPU_CLUSTERED_FROM):
        return CLUSTERED_SEARCH
    return EXACT_SEARCH if cuda else FAISS_EXACT


def default_nlist(num_rows: int) -> int:
    """Partitions of a clustered search: a power of two near ``3.2·√N``, from 16 to 8192 (1024 for
    100k rows, about 100 rows each)."""
    return int(min(2 ** round(math.log2(max(3.2 * math.sqrt(num_rows), 16))), 8192))


def default_nprobe(nlist: int) -> int:
    """Partitions visited per query: 3/64 of them, at least 8 (48 of 1024: about 5 % of the rows, as
    queries favour the larger partitions). Measured on 16 real VOC val images against a 101,690-patch
    memory (DINOv2 ViT-S/14, 448 px, ``eval/bench_search_precision.py --partitions 1024:32 1024:48
    1024:64``): pixel agreement with exact search 99.37 % at 32, 99.70 % at 48, 99.86 % at 64
    partitions, search cost 0.063 / 0.073 / 0.085 s per image on 2 CPU cores (exact: 0.70)."""
    return max(8, 3 * nlist // 64)


def as_float_tensor(rows) -> torch.Tensor:
    """A tensor or (memory-mapped) array ``(n, D)`` → float32 tensor (a view when already float32; the
    view of a read-only memory map is only read, so torch's "array is not writable" warning is not shown)."""
    if not isinstance(rows, torch.Tensor):
        array = np.asarray(rows, dtype=np.float32)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
            rows = torch.from_numpy(array)
    return rows.float()


@contextlib.contextmanager
def faiss_serial():
    """Run the enclosed faiss calls on one thread: the result heaps get small blocks between torch's
    matrix products, where faiss's OpenMP fork/join would cost more than it saves. faiss and torch
    share the process's OpenMP runtime, so the setting is restored at once: held around torch's
    matrix products it would run them on one thread too (measured: the clustered search 1.9x slower
    on 2 cores)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def _use_heaps(device: torch.device) -> bool:
    """Select with faiss result heaps (CPU) rather than ``torch.topk`` merges (other devices)."""
    return device.type == "cpu"


class TopK:
    """The ``k`` largest scores seen so far for each of ``num_queries`` queries, and their row ids.

    :meth:`add` takes a block of scores ``(n, m)`` for ``n`` of the queries (``queries``, distinct, or
    all of them in order) against ``m`` memory rows ``ids (m,)``. On the CPU the selection runs in
    faiss result heaps (linear time, no sort); elsewhere in ``torch.topk`` merges.
    """

    def __init__(self, num_queries: int, k: int, device: torch.device):
        self.num_queries, self.k, self.device = num_queries, k, device
        self.heap = None
        if _use_heaps(device):
            self.heap = faiss.ResultHeap(num_queries, k, keep_max=True)
        else:
            self.sims = torch.full((num_queries, k), -torch.inf, device=device)
            self.ids = torch.full((num_queries, k), -1, dtype=torch.int64, device=device)

    def add(self, scores: torch.Tensor, ids: torch.Tensor, queries: torch.Tensor | None = None) -> None:
        if self.heap is not None:
            subset = (torch.arange(self.num_queries) if queries is None else queries).numpy()
            with faiss_serial():
                self.heap.add_result_subset(subset, scores.float().numpy(), ids.numpy())
            return
        take = min(self.k, scores.shape[1])
        top = scores.float().topk(take, dim=1)
        new_ids = ids[top.indices]
        if queries is None:
            sims, rows = torch.cat([self.sims, top.values], 1), torch.cat([self.ids, new_ids], 1)
        else:
            sims = torch.cat([self.sims[queries], top.values], 1)
            rows = torch.cat([self.ids[queries], new_ids], 1)
        best = sims.topk(self.k, dim=1)
        sims, rows = best.values, rows.gather(1, best.indices)
        if queries is None:
            self.sims, self.ids = sims, rows
        else:
            self.sims[queries], self.ids[queries] = sims, rows

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sims (Q, k), ids (Q, k))``, most similar first; ids ``-1`` (and sims ``-inf``) where fewer
        than ``k`` rows were seen."""
        if self.heap is not None:
            self.heap.finalize()
            sims, ids = torch.from_numpy(self.heap.D), torch.from_numpy(self.heap.I)
            return sims.masked_fill(ids < 0, -torch.inf), ids
        return self.sims, self.ids


class ExactSearch:
    """Exact inner-product search over memory features ``(N, D)`` on ``device``.

    Args:
        features: ``(N, D)`` unit features (tensor or array), or a sequence of such chunks (the
            shards of a sharded bank, memory-mapped); rows are numbered in order across chunks.
        device: where the search runs. The features are kept there when they fit
            (:func:`fits_on_device`); otherwise they stay in (pinned) host memory and are copied over
            block by block at each search.
        score_dtype: ``torch.float16`` scores in half precision and re-ranks exactly (default on
            CUDA); ``None`` scores in float32 (default elsewhere: CPUs have no fast half-precision
            matrix products).
        block_rows: memory rows scored per matrix product.
        query_rows: queries per matrix product (bounds the ``(query_rows, block_rows)`` score block).
    """

    spec = EXACT_SEARCH

    def __init__(self, features, device: str | torch.device | None = None, score_dtype: torch.dtype | None | str = "auto",
                 block_rows: int = 65_536, query_rows: int = 4_096):
        self.device = _device(device)
        if score_dtype == "auto":
            score_dtype = torch.float16 if self.device.type == "cuda" else None
        self.score_dtype, self.query_rows = score_dtype, query_rows
        chunks = [features] if isinstance(features, (torch.Tensor, np.ndarray)) else list(features)
        self.dim = int(chunks[0].shape[1])
        total = sum(len(c) for c in chunks)
        stored = torch.float16 if _is_half(chunks[0]) else torch.float32
        copy = score_dtype.itemsize if score_dtype is not None and score_dtype != stored else 0
        per_row = self.dim * (stored.itemsize + copy)
        self.resident = fits_on_device(total * per_row, self.device)
        home = self.device if self.resident else torch.device("cpu")
        pin = not self.resident and self.device.type == "cuda"
        self.blocks: list[torch.Tensor] = []  # (rows, D) in the stored dtype (exact values)
        for chunk in chunks:
            for start in range(0, len(chunk), block_rows):
                block = _as_tensor(chunk[start:start + block_rows]).to(home)
                self.blocks.append(block.pin_memory() if pin else block)
        self.offsets = np.cumsum([0] + [len(b) for b in self.blocks])
        self.scoring = self.blocks  # (rows, D) in the scoring dtype: half-precision copies when resident
        if score_dtype is not None and score_dtype != stored and self.resident:
            self.scoring = [b.to(score_dtype) for b in self.blocks]
        self.max_norm = max(float(b.float().norm(dim=1).max()) for b in self.blocks) if score_dtype else 1.0

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Exact features ``(..., D)`` float32 of memory rows ``ids`` (any shape, on the device)."""
        flat = ids.reshape(-1)
        if len(self.blocks) == 1:
            out = self.blocks[0].index_select(0, flat.to(self.blocks[0].device))
        else:
            which = torch.bucketize(flat, torch.as_tensor(self.offsets[1:], device=flat.device), right=True)
            out = torch.empty(len(flat), self.dim, dtype=self.blocks[0].dtype, device=self.device)
            for b in which.unique().tolist():
                hit = (which == b).nonzero(as_tuple=True)[0]
                local = (flat[hit] - int(self.offsets[b])).to(self.blocks[b].device)
                out[hit] = self.blocks[b].index_select(0, local).to(self.device, non_blocking=True)
        return out.to(self.device, torch.float32).view(*ids.shape, self.dim)

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` nearest memory rows of queries ``(Q, D)`` → ``(sims (Q, k), ids (Q, k))`` on the device."""
        queries = as_float_tensor(queries).to(self.device)
        k_checked(k, len(self))
        sims, ids = [], []
        for start in range(0, len(queries), self.query_rows):
            chunk = queries[start:start + self.query_rows]
            s, i = self._search_fp32(chunk, k) if self.score_dtype is None else self._search_half(chunk, k)
            sims.append(s)
            ids.append(i)
        return torch.cat(sims), torch.cat(ids)

    def _scan(self, queries: torch.Tensor, k: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` of every block's scores in ``dtype`` (blocks not on the device are copied over)."""
        top = TopK(len(queries), k, self.device)
        q = queries.to(dtype)
        for b, block in enumerate(self.blocks if dtype == torch.float32 else self.scoring):
            scores = q @ block.to(self.device, non_blocking=True).to(dtype).T
            top.add(scores, torch.arange(int(self.offsets[b]), int(self.offsets[b + 1]), device=self.device))
        return top.result()

    def _search_fp32(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._scan(queries, k, torch.float32)

    def _search_half(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Half-precision scores pick ``2k`` candidates, float32 products rank them; exact unless a
        row outside the candidates could beat the ``k``-th: rounding queries and rows to float16
        (relative error 2⁻¹¹ each) and the float16 result (2⁻¹¹ of it) moves a score by less than
        ``HALF_PRECISION_SLACK · |q| · max|x|``, so a row not among the candidates scores at most the
        ``2k``-th half-precision score plus that slack. Queries whose ``k``-th exact similarity is
        not above it are searched again in float32."""
        wide = min(2 * k, len(self))
        rough, candidates = self._scan(queries, wide, self.score_dtype)
        exact = torch.einsum("qd,qmd->qm", queries, self.rows(candidates))
        top = exact.topk(k, dim=1)
        sims, ids = top.values, candidates.gather(1, top.indices)
        if wide < len(self):  # rows never scored exactly can only be missed if the bound allows it
            bound = BFLOAT16_SLACK if self.score_dtype == torch.bfloat16 else HALF_PRECISION_SLACK
            slack = bound * queries.norm(dim=1) * self.max_norm
            doubtful = (sims[:, -1] <= rough[:, -1] + slack).nonzero(as_tuple=True)[0]
            if len(doubtful):
                sims[doubtful], ids[doubtful] = self._search_fp32(queries[doubtful], k)
        return sims, ids


class ClusteredSearch:
    """Inverted-file search with matrix products: exact similarities, approximate candidate set.

    Args:
        features: ``(N, D)`` unit features (tensor or array) or a sequence of chunks.
        device: where the partitioned features live and the search runs.
        nlist: partitions (default :func:`default_nlist`).
        nprobe: partitions visited per query (default :func:`default_nprobe`).
        seed: seed of the k-means sample and initialisation.
        train_size: at most this many rows train the k-means (default 32 per partition).
        score_dtype: ``None`` (default) scores the visited rows in float32; ``torch.bfloat16`` scores
            them in bfloat16 (a copy of the rows is kept) to pick ``2k`` candidates, which float32
            products re-rank, so the similarities returned are exact and only a row that bfloat16
            rounding pushes out of the ``2k`` candidates can be missed (measured by
            ``eval/bench_search_precision.py``).
    """

    spec = CLUSTERED_SEARCH

    def __init__(self, features, device: str | torch.device | None = None, nlist: int | None = None,
                 nprobe: int | None = None, seed: int = 0, train_size: int | None = None, iterations: int = 10,
                 centroids: torch.Tensor | None = None, assignment: torch.Tensor | None = None,
                 score_dtype: torch.dtype | None = None):
        self.device = _device(device)
        self.score_dtype = score_dtype
        self.chunks = [features] if isinstance(features, (torch.Tensor, np.ndarray)) else list(features)
        total = sum(len(c) for c in self.chunks)
        self.nlist = len(centroids) if centroids is not None else min(nlist or default_nlist(total), total)
        self.nprobe = min(nprobe or default_nprobe(self.nlist), self.nlist)
        self.dim, self.seed = int(self.chunks[0].shape[1]), seed
        if centroids is None:  # k-means on a sample (faiss, CPU)
            rng = np.random.default_rng(seed)
            take = min(total, train_size or 32 * self.nlist)
            sample_rows = torch.from_numpy(np.sort(rng.choice(total, take, replace=False)))
            sample = RowGather(self.chunks).gather(sample_rows).numpy()
            kmeans = faiss.Kmeans(self.dim, self.nlist, niter=iterations, seed=seed, spherical=True,
                                  max_points_per_centroid=max(1, take // self.nlist + 1), min_points_per_centroid=1,
                                  verbose=False)
            kmeans.train(np.ascontiguousarray(sample))
            centroids = torch.from_numpy(kmeans.centroids)
        self.centroids = centroids.float().to(self.device)
        self.assignment = self._assign(self.chunks) if assignment is None else assignment.long().to(self.device)
        if len(self.assignment) != total:
            raise ValueError(f"{len(self.assignment)} partition assignments for {total} memory rows")
        self._partition()

    def _assign(self, chunks) -> torch.Tensor:
        """Every row of ``chunks`` to its nearest centroid → ``(n,)`` int64 on the device."""
        assignment = []
        for chunk in chunks:
            for start in range(0, len(chunk), 65_536):
                block = as_float_tensor(chunk[start:start + 65_536]).to(self.device)
                assignment.append((block @ self.centroids.T).argmax(1))
        return torch.cat(assignment)

    def _partition(self) -> None:
        """Lay the rows out partition after partition (``features``, ``order``, ``offsets``)."""
        total = len(self.assignment)
        self.order = torch.argsort(self.assignment, stable=True)  # position (partition after partition) → row
        counts = torch.bincount(self.assignment, minlength=self.nlist)
        self.offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)]).tolist()
        stored = torch.float16 if _is_half(self.chunks[0]) else torch.float32
        if not fits_on_device(total * self.dim * stored.itemsize, self.device):
            from hummingbird.errors import ConfigError, option

            raise ConfigError(f"{option('index', CLUSTERED_SEARCH)}: {total:,} x {self.dim} memory features do not fit on {self.device}; "
                              f"use {option('index', EXACT_SEARCH)} (streams them block by block) or auto")
        # (N, D) in the stored dtype, partition after partition
        self.features = RowGather(self.chunks).gather(self.order.cpu(), stored).to(self.device)
        self.positions = torch.arange(len(self.features), device=self.device)
        # (N, D) in the reduced scoring dtype (None: float32 scoring of the stored rows)
        self.scoring = None if self.score_dtype is None else self.features.to(self.score_dtype)

    def add(self, features) -> "ClusteredSearch":
        """Append memory rows ``(n, D)`` (numbered after the current ones), each to its nearest existing
        partition: the memory grows without re-training the partitions."""
        self.chunks.append(features)
        self.assignment = torch.cat([self.assignment, self._assign([features])])
        self._partition()
        return self

    def state(self) -> dict[str, torch.Tensor]:
        """What re-creates this search over the same rows without training: ``centroids (nlist, D)``
        float32 and ``assignment (N,)`` int32, on the CPU."""
        return {"centroids": self.centroids.cpu().contiguous(), "assignment": self.assignment.to("cpu", torch.int32)}

    def __len__(self) -> int:
        return len(self.features)

    def search(self, queries: torch.Tensor, k: int, query_rows: int = 16_384) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` nearest memory rows of queries ``(Q, D)`` among their ``nprobe`` nearest partitions →
        ``(sims (Q, k), ids (Q, k))`` on the device. A query whose partitions hold fewer than ``k``
        rows is searched exactly."""
        queries = as_float_tensor(queries).to(self.device)
        k_checked(k, len(self))
        sims, ids = [], []
        for start in range(0, len(queries), query_rows):
            s, i = self._search(queries[start:start + query_rows], k)
            sims.append(s)
            ids.append(i)
        return torch.cat(sims), torch.cat(ids)

    def _search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        probes = (queries @ self.centroids.T).topk(self.nprobe, dim=1, sorted=False).indices.reshape(-1)
        by_partition = torch.argsort(probes, stable=True)
        query_of = by_partition // self.nprobe  # queries grouped by the partition they visit
        visits = torch.bincount(probes, minlength=self.nlist).tolist()
        reduced = self.score_dtype is not None
        wide = min(2 * k, len(self)) if reduced else k
        top = TopK(len(queries), wide, self.device)
        positions = self.positions
        scored = queries if self.scoring is None else queries.to(self.scoring.dtype)
        start = 0
        for part, count in enumerate(visits):
            if count == 0:
                continue
            rows = query_of[start:start + count]
            start += count
            a, b = self.offsets[part], self.offsets[part + 1]
            if a == b:
                continue
            block = self.features[a:b].float() if self.scoring is None else self.scoring[a:b]
            top.add(scored.index_select(0, rows) @ block.T, positions[a:b], rows)
        sims, where = top.result()
        if reduced:  # exact float32 similarities of the candidates, best k kept
            exact = torch.einsum("qd,qmd->qm", queries, self.features[where.clamp_min(0)].float())
            best = exact.masked_fill(where < 0, -torch.inf).topk(k, dim=1)
            sims, where = best.values, where.gather(1, best.indices)
        short = (where < 0).any(1).nonzero(as_tuple=True)[0]
        if len(short):  # too few rows in the visited partitions: exact search for these queries
            sims[short], where[short] = self._exact(queries[short], k)
        return sims, self.order[where.to(self.order.device)]

    def _exact(self, queries: torch.Tensor, k: int, block: int = 65_536) -> tuple[torch.Tensor, torch.Tensor]:
        top = TopK(len(queries), k, self.device)
        for a in range(0, len(self.features), block):
            top.add(queries @ self.features[a:a + block].float().T, self.positions[a:a + block])
        return top.result()


def k_checked(k: int, rows: int) -> None:
    from hummingbird.errors import ConfigError

    if k > rows:
        raise ConfigError(f"k={k} neighbours asked for but the memory holds only {rows} patches")


def _is_half(x) -> bool:
    return x.dtype in (torch.float16, np.float16)


def _as_tensor(rows) -> torch.Tensor:
    """Rows of a tensor or (memory-mapped) array as a tensor in their own float dtype (float16 stays)."""
    if isinstance(rows, torch.Tensor):
        return rows if rows.dtype in (torch.float16, torch.float32) else rows.float()
    array = np.asarray(rows)
    return torch.from_numpy(np.array(array, dtype=np.float16 if array.dtype == np.float16 else np.float32))
