#!/usr/bin/env python
"""Hummingbird in-context segmentation table: one row per (training file set, memory size).

Each row builds a memory bank from the training split (class-balanced, augmented), evaluates on
the validation split, and writes ``ROWS/<row>.json``; rows whose JSON exists are skipped, so an
interrupted run resumes. ``summary.json`` and ``summary.md`` collect all rows.

Example (Pascal VOC, DINO ViT-S/16, the three Hummingbird memory sizes)::

    python eval/hbird_table.py --dataset voc --data-root data/VOCdevkit --backbone dino_vits16 \\
        --weights weights/dino_deitsmall16_pretrain.pth --out-dir runs/voc_dino_vits16
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from fungi_dense.assemble import fungi_features
from fungi_dense.features import FungiConfig
from hummingbird.backbones import encoder_from_weights_file
from hummingbird.cli import DEFAULT_INPUT_SIZE
from hummingbird.datasets import DATASET_KINDS, DEFAULT_SPLITS, load_dataset
from hummingbird.features import TokenFeatures
from hummingbird.pipeline import LoaderOptions, build_memory_bank, evaluate, make_decoder
from hummingbird.results import write_json
from hummingbird.shards import ShardedBank, build_sharded_bank, write_manifest
from hummingbird.transforms import EvalResize, MemoryAugment

HUMMINGBIRD_MEMORY_SIZES = (1024 * 10**2, 1024 * 10**3, 1024 * 10**4)


def build_parser(dataset: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " Resumable; writes JSON per row.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=DATASET_KINDS, default=dataset, required=dataset is None)
    p.add_argument("--data-root", required=True)
    p.add_argument("--train-split", default=None)
    p.add_argument("--val-split", default=None)
    p.add_argument("--filesets", nargs="*", default=[],
                   help="training id lists (data-efficient rows); the full split is always a row too "
                        "unless --no-full")
    p.add_argument("--no-full", action="store_true", help="only the --filesets rows")
    p.add_argument("--memory-sizes", type=int, nargs="+", default=list(HUMMINGBIRD_MEMORY_SIZES))
    p.add_argument("--augmentation-epochs", type=int, default=1)
    p.add_argument("--backbone", required=True)
    p.add_argument("--weights", default=None)
    p.add_argument("--input-size", type=int, default=None, help="default 512 (504 for /14)")
    p.add_argument("--k", type=int, default=30)
    p.add_argument("--temperature", type=float, default=0.02)
    p.add_argument("--index", default="auto", help="auto (exact, clustered above ~40k patches), exact, clustered, "
                                                   "or a faiss factory string")
    p.add_argument("--fp16", action="store_true", help="float16 memory features")
    p.add_argument("--sharded", action="store_true",
                   help="build each row's bank as shards under --out-dir/banks/ (for banks larger than RAM)")
    p.add_argument("--shard-images", type=int, default=256)
    p.add_argument("--nprobe", type=int, default=None, help="default: clustered's own, 64 for faiss")
    p.add_argument("--refine", type=int, default=1, help="re-rank refine×k approximate candidates exactly")
    p.add_argument("--limit-train", type=int, default=None, help="first N training images (smoke runs)")
    p.add_argument("--limit-val", type=int, default=None, help="first N validation images (smoke runs)")
    p.add_argument("--features", nargs="+", default=["tokens"], choices=("tokens", "fungi-fast", "fungi-dense"),
                   help="feature kinds, one set of rows each (FUNGI rows build a support memory per training set)")
    p.add_argument("--fungi-objectives", nargs="+", default=["infonce"], choices=("infonce", "kl"))
    p.add_argument("--fungi-support-fraction", type=float, default=0.5)
    p.add_argument("--fungi-support-index", default="Flat")
    p.add_argument("--fungi-pca-dim", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--dry-run", action="store_true", help="print the planned rows and their memory, run nothing")
    return p


def main(argv: list[str] | None = None, dataset: str | None = None) -> int:
    args = build_parser(dataset).parse_args(argv)
    out_dir = Path(args.out_dir)
    train_split = args.train_split or DEFAULT_SPLITS[args.dataset][0]
    val_split = args.val_split or DEFAULT_SPLITS[args.dataset][1]
    filesets = ([None] if not args.no_full else []) + list(args.filesets)
    rows = [(kind, fs, m) for kind in args.features for fs in filesets for m in args.memory_sizes]

    encoder = encoder_from_weights_file(args.backbone, args.weights).to(args.device)
    size = args.input_size or DEFAULT_INPUT_SIZE.get(encoder.patch_size, 512)
    for kind, fs, m in rows:
        dim = encoder.embed_dim * (1 if kind == "tokens" else 1 + len(args.fungi_objectives))
        dim = args.fungi_pca_dim if kind != "tokens" and args.fungi_pca_dim else dim
        print(f"row {_row_name(args, kind, fs, m)}: memory {m:,} patches x {dim} = "
              f"{m * dim * (2 if args.fp16 else 4) / 2**30:.2f} GiB features", file=sys.stderr)
    if args.dry_run:
        return 0

    opts = LoaderOptions(batch_size=args.batch_size, num_workers=args.num_workers, device=args.device)
    val = load_dataset(args.dataset, args.data_root, val_split, EvalResize(size)).first(args.limit_val)
    summary, sources = [], {}
    for kind, fs, memory_size in rows:
        name = _row_name(args, kind, fs, memory_size)
        row_path = out_dir / "rows" / f"{name}.json"
        if row_path.is_file():
            print(f"{name}: done already ({row_path}), skipping", file=sys.stderr)
            summary.append(json.loads(row_path.read_text()))
            continue
        train = load_dataset(args.dataset, args.data_root, train_split, MemoryAugment(size), seed=args.seed,
                             fileset=fs)
        train = train.first(args.limit_train)
        if (kind, fs) not in sources:
            sources[(kind, fs)] = _feature_source(args, kind, encoder, size, train, out_dir, fs, opts)
        features = sources[(kind, fs)]
        started = time.perf_counter()
        if args.sharded:  # bank on disk, shard by shard (resumable inside the row), read memory-mapped
            bank_dir = out_dir / "banks" / name
            build_sharded_bank(features, train, bank_dir, size, memory_size=memory_size,
                               augmentation_epochs=args.augmentation_epochs, seed=args.seed, fp16=args.fp16,
                               shard_images=args.shard_images, opts=opts)
            write_manifest(bank_dir, len(train), args.augmentation_epochs, args.shard_images)
            bank = ShardedBank(bank_dir)
        else:
            bank = build_memory_bank(features, train, size, memory_size=memory_size,
                                     augmentation_epochs=args.augmentation_epochs, seed=args.seed, fp16=args.fp16,
                                     opts=opts)
        decoder = make_decoder(bank, k=args.k, temperature=args.temperature, index_spec=args.index, seed=args.seed,
                               nprobe=args.nprobe, refine=args.refine, device=args.device)
        result = evaluate(features, decoder, val, opts)
        row = {"row": name, "dataset": args.dataset, "backbone": args.backbone, "feature_kind": kind,
               "fileset": fs, "train_images": len(train), "val_images": len(val), "memory_size": memory_size,
               "memory_patches": len(bank), "input_size": size, "k": args.k, "temperature": args.temperature,
               "index": args.index, "seed": args.seed, "weights": encoder.weights_id,
               "feature_dim": features.dim, "fungi": bank.metadata.get("fungi"),
               "mIoU": result["mIoU"], "mIoU_hungarian": result["hungarian"]["mIoU"],
               "pixel_accuracy": result["pixel_accuracy"], "per_class_iou": result["per_class_iou"],
               "seconds": round(time.perf_counter() - started, 1)}
        write_json(row_path, row)
        summary.append(row)
        print(f"{name}: mIoU {100 * row['mIoU']:.2f}", file=sys.stderr)

    write_json(out_dir / "summary.json", {"rows": summary})
    table = ["| backbone | features | train set | memory | mIoU | mIoU (Hungarian) |", "|---|---|---|---|---|---|"]
    for r in summary:
        table.append(f"| {r['backbone']} | {r['feature_kind']} | {Path(r['fileset']).stem if r['fileset'] else 'full'} "
                     f"| {r['memory_size']:,} | {100 * r['mIoU']:.1f} | {100 * r['mIoU_hungarian']:.1f} |")
    (out_dir / "summary.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    return 0


def _feature_source(args, kind: str, encoder, size: int, train, out_dir: Path, fileset: str | None, opts):
    """Plain tokens, or FUNGI with a support memory built from this row's training images (kept on disk
    under ``out_dir/support/`` and reused on resume)."""
    if kind == "tokens":
        return TokenFeatures(encoder)
    config = FungiConfig(objectives=tuple(args.fungi_objectives), projection=kind.split("-")[1],
                         pca_dim=args.fungi_pca_dim)
    support_train = train.subset([s.id for s in train.samples], "training images")
    support_train.transform = EvalResize(size)
    subset = Path(fileset).stem if fileset else "full"
    support_path = out_dir / "support" / f"{args.dataset}_{args.backbone}_{subset}_{size}.safetensors"
    return fungi_features(encoder, config, support_path, size, training=support_train,
                          support_fraction=args.fungi_support_fraction, support_index=args.fungi_support_index,
                          seed=args.seed, opts=opts)


def _row_name(args, kind: str, fileset: str | None, memory_size: int) -> str:
    subset = Path(fileset).stem if fileset else "full"
    return f"{args.dataset}_{args.backbone}_{kind}_{subset}_m{memory_size}"


if __name__ == "__main__":
    sys.exit(main())
