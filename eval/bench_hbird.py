#!/usr/bin/env python
"""Throughput and memory of the Hummingbird pipeline on this machine.

Prints and writes (JSON) for a fixed image count:
  * token extraction: images/s of the backbone at --input-size (weights do not change speed, so the
    default is a seeded random init of the real architecture);
  * memory building: images/s and patches/s of build-memory (augmentation, tokens, patch labels,
    class-balanced sampling) on generated 21-class images;
  * search: queries/s of exact search and of each approximate faiss index over a synthetic bank of
    --bank-size unit vectors (a Gaussian mixture, since random-init tokens are not clustered like real
    ones), and the approximate indexes' recall@k against exact search;
  * peak resident memory of the process.

    python eval/bench_hbird.py --out runs/bench_hbird.json
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hummingbird.backbones import encoder_from_weights_file
from hummingbird.datasets import load_dataset
from hummingbird.features import TokenFeatures
from hummingbird.index import NeighbourIndex
from hummingbird.pipeline import LoaderOptions, build_memory_bank
from hummingbird.results import write_json
from hummingbird.synthetic import write_block_dataset
from hummingbird.transforms import MemoryAugment


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def bench_tokens(features: TokenFeatures, images: int, size: int, batch: int, device: str) -> dict:
    x = torch.rand(batch, 3, size, size, device=device)
    features(x[:1])  # warm-up
    started = time.perf_counter()
    done = 0
    while done < images:
        n = min(batch, images - done)
        features(x[:n])
        done += n
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"images": images, "seconds": round(seconds, 3), "images_per_s": round(images / seconds, 2)}


def bench_memory(features: TokenFeatures, images: int, size: int, opts: LoaderOptions) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_block_dataset(Path(tmp) / "scenes", n_train=images, n_val=0, size=size, block=size // 8,
                                   num_classes=21)
        dataset = load_dataset("folder", root, "train", MemoryAugment(size))
        out = {}
        for label, memory_size in (("unbounded", None), ("bounded", images * 100)):
            started = time.perf_counter()
            bank = build_memory_bank(features, dataset, size, memory_size=memory_size, opts=opts)
            seconds = time.perf_counter() - started
            seen = images * (size // features.patch_size) ** 2
            out[label] = {"images_per_s": round(images / seconds, 2), "patches_per_s": round(seen / seconds, 1),
                          "patches_kept": len(bank), "seconds": round(seconds, 3)}
    return out


def synthetic_bank(n: int, dim: int, centres: int, seed: int) -> torch.Tensor:
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
        started = time.perf_counter()
        index = NeighbourIndex(dim, spec, nprobe=nprobe, use_gpu=False, seed=seed).add(memory)
        build = time.perf_counter() - started
        started = time.perf_counter()
        _, ids = index.search(query, k)
        seconds = time.perf_counter() - started
        row = {"build_seconds": round(build, 2), "queries_per_s": round(queries / seconds, 1)}
        if exact_ids is None:
            exact_ids = ids.numpy()
        else:
            hits = [len(np.intersect1d(a, e)) for a, e in zip(ids.numpy(), exact_ids)]
            row["recall_at_k"] = round(float(np.mean(hits)) / k, 4)
        out["indexes"][spec] = row
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--backbone", default="dino_vits16")
    p.add_argument("--weights", default="random", help="checkpoint path, or 'random' (speed does not depend on it)")
    p.add_argument("--input-size", type=int, default=512)
    p.add_argument("--images", type=int, default=16, help="images for token extraction and memory building")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bank-size", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=10_000)
    p.add_argument("--k", type=int, default=30)
    p.add_argument("--index-specs", nargs="*", default=["IVF1024,Flat", "IVF1024,SQ8", "HNSW32"])
    p.add_argument("--nprobe", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch/faiss threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench_hbird.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        import faiss

        faiss.omp_set_num_threads(args.threads)

    features = TokenFeatures(encoder_from_weights_file(args.backbone, args.weights)).to(args.device)
    opts = LoaderOptions(batch_size=args.batch_size, num_workers=args.num_workers, device=args.device, progress=False)
    report = {"machine": {"cpu_count": torch.get_num_threads(), "platform": platform.platform(),
                          "device": args.device, "torch": torch.__version__},
              "backbone": args.backbone, "input_size": args.input_size}
    report["tokens"] = bench_tokens(features, args.images, args.input_size, args.batch_size, args.device)
    print(f"tokens:  {report['tokens']['images_per_s']:.2f} images/s ({args.backbone} @ {args.input_size}px)")
    report["memory"] = bench_memory(features, args.images, args.input_size, opts)
    for label, row in report["memory"].items():
        print(f"memory ({label}): {row['images_per_s']:.2f} images/s, {row['patches_per_s']:.0f} patches/s, "
              f"{row['patches_kept']} kept")
    report["search"] = bench_search(args.bank_size, args.dim, args.queries, args.k, args.index_specs,
                                    args.nprobe, args.seed)
    for spec, row in report["search"]["indexes"].items():
        recall = f", recall@{args.k} {row['recall_at_k']:.3f}" if "recall_at_k" in row else " (exact)"
        print(f"search {spec:>14}: {row['queries_per_s']:.0f} queries/s, build {row['build_seconds']:.1f}s{recall}")
    report["peak_rss_gib"] = round(peak_rss_gib(), 3)
    print(f"peak RSS: {report['peak_rss_gib']:.2f} GiB")
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
