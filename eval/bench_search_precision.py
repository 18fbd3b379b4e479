#!/usr/bin/env python
"""Neighbour search in reduced precision on this CPU: cost and exactness against float32 scoring.

A memory of every labelled patch of --train-images real VOC train images (DINOv2 ViT-S/14 on the real
weights in ``../shared``, 448 px) and the query features of --val-images val images; then, for the
clustered search (the default above 40k patches) and exact search, float32 scoring against bfloat16
scoring with float32 re-ranking: search seconds per image, the share of queries whose k neighbour
sets are identical, max |Δ similarity| of the returned neighbours, and the pixel agreement of the
decoder's label maps.

    python eval/bench_search_precision.py --out runs/bench_search_precision.json
"""

from __future__ import annotations

import sys

import harness
import torch
from harness import timed

from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.registry import load_dataset
from hummingbird.datasets.transforms import EvalResize, MemoryAugment
from hummingbird.memory.decoder import HummingbirdDecoder
from hummingbird.memory.search import ClusteredSearch, ExactSearch
from hummingbird.models.backbones import load_backbone
from hummingbird.models.features import TokenFeatures
from hummingbird.models.precision import processor
from hummingbird.pipeline import build_memory_bank


def partition_sweep(bank, queries: list[torch.Tensor], size: tuple[int, int], args) -> list[dict]:
    """Clustered search with each ``nlist:nprobe`` of --partitions against exact search: index build
    seconds, search seconds per image, pixel agreement of the label maps."""
    exact = HummingbirdDecoder(ExactSearch(bank.features, "cpu"), bank.labels.float(), k=args.k)
    reference = torch.cat([exact.predict(q, size) for q in queries])
    rows = []
    for spec in args.partitions:
        nlist, nprobe = (int(v) for v in spec.split(":"))
        with timed() as clock:
            index = ClusteredSearch(bank.features, "cpu", nlist=nlist, nprobe=nprobe)
        build = clock.seconds
        with timed() as clock:
            for q in queries:
                index.search(q.reshape(-1, q.shape[-1]), args.k)
        seconds = clock.seconds / sum(len(q) for q in queries)
        decoder = HummingbirdDecoder(index, bank.labels.float(), k=args.k)
        maps = torch.cat([decoder.predict(q, size) for q in queries])
        row = {"nlist": nlist, "nprobe": nprobe, "build_seconds": round(build, 2),
               "search_s_per_image": round(seconds, 4),
               "pixel_agreement_with_exact": round(float((maps == reference).float().mean()), 6)}
        rows.append(row)
        print(f"clustered nlist {nlist}, nprobe {nprobe}: {seconds:.4f} s/image search, built in {build:.1f} s, "
              f"pixel agreement with exact {100 * row['pixel_agreement_with_exact']:.3f} %", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--train-images", type=int, default=100)
    p.add_argument("--val-images", type=int, default=16)
    p.add_argument("--input-size", type=int, default=448)
    p.add_argument("--k", type=int, default=30)
    p.add_argument("--searches", nargs="*", default=["clustered", "exact"], choices=("clustered", "exact"))
    p.add_argument("--partitions", nargs="*", default=[], metavar="NLIST:NPROBE",
                   help="also compare clustered searches of these shapes with exact search")
    harness.add_out_arg(p, "runs/bench_search_precision.json")
    args = p.parse_args(argv)
    root = harness.SHARED / "voc"
    encoder = load_backbone("dinov2_vits14", weights=harness.SHARED_WEIGHTS, precision="auto")
    features = TokenFeatures(encoder)
    train = load_dataset("voc", root, "train", MemoryAugment(args.input_size)).first(args.train_images)
    val = load_dataset("voc", root, "val", EvalResize(args.input_size)).first(args.val_images)
    bank = build_memory_bank(features, train, args.input_size, opts=LoaderOptions(progress=False))
    batches = list(torch.utils.data.DataLoader(val, batch_size=8))
    with torch.no_grad():
        queries = [features(b["image"]) for b in batches]
    size = tuple(batches[0]["mask"].shape[-2:])
    report = {"processor": processor(), "memory": len(bank), "val_images": len(val), "k": args.k, "searches": {}}
    print(f"memory {len(bank):,} patches; {len(val)} query images; backbone in {encoder.active_precision}")
    for name in args.searches:
        rows = {}
        for dtype in (None, torch.bfloat16):
            kind = ClusteredSearch if name == "clustered" else ExactSearch
            index = kind(bank.features, "cpu", score_dtype=dtype)
            decoder = HummingbirdDecoder(index, bank.labels.float(), k=args.k)
            with timed() as clock:
                found = [index.search(q.reshape(-1, q.shape[-1]), args.k) for q in queries]
            seconds = clock.seconds
            maps = torch.cat([decoder.predict(q, size) for q in queries])
            rows["bfloat16" if dtype else "float32"] = (seconds / len(val), found, maps)
        (s32, found32, maps32), (s16, found16, maps16) = rows["float32"], rows["bfloat16"]
        same_sets = torch.cat([(a[1].sort(1).values == b[1].sort(1).values).all(1) for a, b in zip(found32, found16)])
        sim_diff = max(float((a[0] - b[0]).abs().max()) for a, b in zip(found32, found16))
        row = {"float32_search_s_per_image": round(s32, 4), "bfloat16_search_s_per_image": round(s16, 4),
               "speedup": round(s32 / s16, 3), "queries_same_neighbours": round(float(same_sets.float().mean()), 6),
               "max_abs_similarity_diff": sim_diff,
               "pixel_agreement": round(float((maps32 == maps16).float().mean()), 6)}
        report["searches"][name] = row
        print(f"{name}: float32 {s32:.4f} s/image, bfloat16 + float32 re-ranking {s16:.4f} s/image "
              f"({row['speedup']:.2f}x); identical neighbour sets {100 * row['queries_same_neighbours']:.3f} % of "
              f"queries, max |Δsim| {sim_diff:.2e}, pixel agreement {100 * row['pixel_agreement']:.4f} %", flush=True)
    if args.partitions:
        report["partitions"] = partition_sweep(bank, queries, size, args)
    harness.write_results(args.out, report, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
