#!/usr/bin/env python
"""Throughput: token extraction and memory building on generated images, and exact against approximate
faiss indexes on a synthetic bank (queries/s, build seconds, recall@k). Also ``bench_hbird.py --throughput``.

    python eval/bench_throughput.py --out runs/bench_throughput.json
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import harness
import numpy as np
import torch
import torch.nn.functional as F
from harness import timed

from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.registry import load_dataset
from hummingbird.datasets.synthetic import write_block_dataset
from hummingbird.datasets.transforms import MemoryAugment
from hummingbird.memory.faiss_index import NeighbourIndex
from hummingbird.models.backbones import encoder_from_weights_file
from hummingbird.models.features import TokenFeatures
from hummingbird.pipeline import build_memory_bank


def add_throughput_args(g) -> None:
    """The options of these figures (also a group of ``bench_hbird.py``)."""
    g.add_argument("--throughput-backbone", default="dino_vits16")
    g.add_argument("--throughput-input-size", type=int, default=512)
    g.add_argument("--throughput-images", type=int, default=16)
    g.add_argument("--bank-size", type=int, default=200_000)
    g.add_argument("--dim", type=int, default=384)
    g.add_argument("--queries", type=int, default=10_000)
    g.add_argument("--index-specs", nargs="*", default=["IVF1024,Flat", "IVF1024,SQ8", "HNSW32"])
    g.add_argument("--faiss-nprobe", type=int, default=64, help="IVF lists searched per query (faiss indexes)")


def bench_tokens(features: TokenFeatures, images: int, size: int, batch: int, device: str) -> dict:
    x = torch.rand(batch, 3, size, size, device=device)
    features(x[:1])  # warm-up
    with timed(device) as clock:
        for start in range(0, images, batch):
            features(x[:min(batch, images - start)])
    return {"images": images, "seconds": round(clock.seconds, 3), "images_per_s": round(images / clock.seconds, 2)}


def bench_memory(features: TokenFeatures, images: int, size: int, opts: LoaderOptions) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_block_dataset(Path(tmp) / "scenes", n_train=images, n_val=0, size=size, block=size // 8,
                                   num_classes=21)
        dataset = load_dataset("folder", root, "train", MemoryAugment(size))
        out = {}
        for label, memory_size in (("unbounded", None), ("bounded", images * 100)):
            with timed() as clock:
                bank = build_memory_bank(features, dataset, size, memory_size=memory_size, opts=opts)
            seen = images * (size // features.patch_size) ** 2
            out[label] = {"images_per_s": round(images / clock.seconds, 2),
                          "patches_per_s": round(seen / clock.seconds, 1), "patches_kept": len(bank),
                          "seconds": round(clock.seconds, 3)}
    return out


def synthetic_bank(n: int, dim: int, centres: int, seed: int) -> torch.Tensor:
    """``(n, dim)`` unit vectors drawn around ``centres`` random means."""
    g = torch.Generator().manual_seed(seed)
    means = F.normalize(torch.randn(centres, dim, generator=g), dim=1)
    which = torch.randint(0, centres, (n,), generator=g)
    return F.normalize(means[which] + 0.6 * torch.randn(n, dim, generator=g) / dim**0.5 * 4, dim=1)


def bench_search(bank_size: int, dim: int, queries: int, k: int, specs: list[str], nprobe: int, seed: int) -> dict:
    data = synthetic_bank(bank_size + queries, dim, centres=max(64, bank_size // 500), seed=seed)
    memory, query = data[:bank_size], data[bank_size:]
    out = {"bank_size": bank_size, "dim": dim, "queries": queries, "k": k, "indexes": {}}
    exact_ids = None
    for spec in ["Flat", *specs]:
        with timed() as build:
            index = NeighbourIndex(dim, spec, nprobe=nprobe, use_gpu=False, seed=seed).add(memory)
        with timed() as search:
            _, ids = index.search(query, k)
        row = {"build_seconds": round(build.seconds, 2), "queries_per_s": round(queries / search.seconds, 1)}
        if exact_ids is None:
            exact_ids = ids.numpy()
        else:
            hits = [len(np.intersect1d(a, e)) for a, e in zip(ids.numpy(), exact_ids)]
            row["recall_at_k"] = round(float(np.mean(hits)) / k, 4)
        out["indexes"][spec] = row
    return out


def bench_throughput(args) -> dict:
    size = args.throughput_input_size
    features = TokenFeatures(encoder_from_weights_file(args.throughput_backbone, "random")).to(args.device)
    opts = LoaderOptions(batch_size=args.batch_size, num_workers=args.num_workers, device=args.device, progress=False)
    out = {"backbone": args.throughput_backbone, "input_size": size}
    out["tokens"] = bench_tokens(features, args.throughput_images, size, args.batch_size, args.device)
    print(f"tokens:  {out['tokens']['images_per_s']:.2f} images/s ({args.throughput_backbone} @ {size}px)")
    out["memory"] = bench_memory(features, args.throughput_images, size, opts)
    for label, row in out["memory"].items():
        print(f"memory ({label}): {row['images_per_s']:.2f} images/s, {row['patches_per_s']:.0f} patches/s, "
              f"{row['patches_kept']} kept")
    out["search"] = bench_search(args.bank_size, args.dim, args.queries, args.k, args.index_specs,
                                 args.faiss_nprobe, args.seed)
    for spec, row in out["search"]["indexes"].items():
        recall = f", recall@{args.k} {row['recall_at_k']:.3f}" if "recall_at_k" in row else " (exact)"
        print(f"search {spec:>14}: {row['queries_per_s']:.0f} queries/s, build {row['build_seconds']:.1f}s{recall}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    add_throughput_args(p)
    p.add_argument("--k", type=int, default=30, help="neighbours per query")
    harness.add_runtime_args(p, batch_size=8, num_workers=1)
    harness.add_out_arg(p, "runs/bench_throughput.json")
    args = p.parse_args(argv)
    harness.write_results(args.out, {"throughput": bench_throughput(args)}, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
