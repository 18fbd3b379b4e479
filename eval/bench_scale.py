#!/usr/bin/env python
"""Scale benchmark: build, index and search a sharded bank that is never held in RAM.

A synthetic bank of --patches unit vectors (--dim, a Gaussian mixture like clustered patch features)
is written as fp16 shards through the bank writer (build throughput, patches/s), then an IVF-PQ index
is trained on a sample and filled shard by shard from memory maps, and --queries held-out vectors are
searched with exact re-ranking of refine×k candidates read from the memory-mapped shards. Exact
neighbours are computed shard by shard for recall@k. Prints and writes JSON: throughput, queries/s,
recall@k, peak resident memory, and the memory a 10.24M-patch bank needs with these settings.

    python eval/bench_scale.py --out runs/bench_scale.json
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import faiss
import harness
import numpy as np
import torch
import torch.nn.functional as F
from harness import peak_rss_gib, timed

from hummingbird.memory.bank import MemoryBank
from hummingbird.memory.shards import ShardedBank, shard_name, write_manifest
from hummingbird.pipeline import make_decoder

PAPER_PATCHES = 1024 * 10**4


def mixture(n: int, dim: int, centres: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    which = torch.randint(0, len(centres), (n,), generator=g)
    return F.normalize(centres[which] + 0.5 * torch.randn(n, dim, generator=g) / dim**0.5 * 3, dim=1)


def write_synthetic_bank(out: Path, patches: int, dim: int, shard_rows: int, classes: int,
                         seed: int) -> tuple[float, torch.Tensor]:
    """Write shards like a build does (fp16 features, labels, sources, views); returns the seconds taken
    and the mixture centres (for drawing queries)."""
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(max(64, patches // 2000), dim, generator=g), dim=1)
    with timed() as clock:
        for shard, start in enumerate(range(0, patches, shard_rows)):
            n = min(shard_rows, patches - start)
            feats = mixture(n, dim, centres, seed + 1 + shard).half()
            labels = F.one_hot(torch.randint(0, classes, (n,)), classes).float()
            sources = torch.zeros(n, 3, dtype=torch.int32)
            views = torch.zeros(1, 6, dtype=torch.int32)
            MemoryBank(feats, labels, sources, views, {"class_names": [f"c{i}" for i in range(classes)],
                                                        "feature_kind": "synthetic"}).save(out / shard_name(0, start))
        write_manifest(out, patches, 1, shard_rows)
    return clock.seconds, centres


def exact_neighbours(bank: ShardedBank, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k over all shards, one shard (as float32) at a time."""
    best_sims = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    offset = 0
    for chunk in bank.feature_chunks():
        flat = faiss.IndexFlatIP(queries.shape[1])
        flat.add(np.ascontiguousarray(chunk, dtype=np.float32))
        sims, ids = flat.search(queries, k)
        best_sims = np.concatenate([best_sims, sims], 1)
        best_ids = np.concatenate([best_ids, ids + offset], 1)
        top = np.argsort(-best_sims, axis=1)[:, :k]
        best_sims, best_ids = np.take_along_axis(best_sims, top, 1), np.take_along_axis(best_ids, top, 1)
        offset += len(chunk)
    return best_ids


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--patches", type=int, default=2_000_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--classes", type=int, default=21)
    p.add_argument("--shard-rows", type=int, default=200_000)
    p.add_argument("--index", default="IVF1024,PQ96x4fs", help="faiss factory string (4-bit fast-scan PQ trains fast)")
    p.add_argument("--nprobe", type=int, default=32)
    p.add_argument("--refine", type=int, default=20, help="re-rank refine×k candidates exactly")
    p.add_argument("--train-size", type=int, default=65_536)
    p.add_argument("--queries", type=int, default=10_000)
    p.add_argument("--k", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dir", default=None, help="where to write the shards (default: a temporary folder)")
    harness.add_out_arg(p, "runs/bench_scale.json")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp) / "bank"
        build_seconds, centres = write_synthetic_bank(root, args.patches, args.dim, args.shard_rows, args.classes,
                                                      args.seed)
        rss_build = peak_rss_gib()
        print(f"build: {args.patches:,} patches in {build_seconds:.1f}s = {args.patches / build_seconds:,.0f} patches/s "
              f"(peak RSS {rss_build:.2f} GiB)")
        bank = ShardedBank(root)
        queries = mixture(args.queries, args.dim, centres, args.seed + 10_000).numpy()

        with timed() as clock:
            index = make_decoder(bank, k=args.k, index_spec=args.index, nprobe=args.nprobe, use_gpu=False,
                                 seed=args.seed, refine=args.refine, train_size=args.train_size).index
        index_seconds = clock.seconds
        print(f"index {args.index}: trained on {min(args.train_size, len(bank)):,} and filled shard by shard "
              f"in {index_seconds:.1f}s")

        with timed() as clock:
            _, ids = index.search(queries, args.k)
        search_seconds = clock.seconds
        rss_search = peak_rss_gib()
        print(f"search: {args.queries / search_seconds:,.0f} queries/s (nprobe {args.nprobe}, refine {args.refine}); "
              f"peak RSS {rss_search:.2f} GiB")

        with timed() as clock:
            exact = exact_neighbours(bank, queries, args.k)
        exact_seconds = clock.seconds
        recall = float(np.mean([len(np.intersect1d(a, e)) for a, e in zip(ids.numpy(), exact)]) / args.k)
        print(f"recall@{args.k} against exact search ({exact_seconds:.0f}s): {recall:.4f}")

    code_bytes = index.index.sa_code_size() if hasattr(index.index, "sa_code_size") else 0
    estimate = {
        "patches": PAPER_PATCHES,
        "features_on_disk_gib": PAPER_PATCHES * args.dim * 2 / 2**30,
        "labels_on_disk_gib": PAPER_PATCHES * args.classes * 4 / 2**30,
        "index_in_ram_gib": PAPER_PATCHES * (code_bytes + 8) / 2**30,
    }
    print(f"10.24M-patch bank with these settings: {estimate['features_on_disk_gib']:.1f} GiB fp16 features and "
          f"{estimate['labels_on_disk_gib']:.1f} GiB labels on disk (memory-mapped), "
          f"{estimate['index_in_ram_gib']:.2f} GiB index in RAM ({code_bytes} B codes + 8 B ids per patch)")
    report = {"patches": args.patches, "dim": args.dim, "index": args.index, "nprobe": args.nprobe,
              "refine": args.refine, "queries": args.queries, "k": args.k,
              "build_patches_per_s": args.patches / build_seconds, "index_seconds": index_seconds,
              "queries_per_s": args.queries / search_seconds, f"recall_at_{args.k}": recall,
              "peak_rss_gib_build": rss_build, "peak_rss_gib": rss_search, "paper_scale_estimate": estimate,
              "threads": torch.get_num_threads()}
    harness.write_results(args.out, report, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
