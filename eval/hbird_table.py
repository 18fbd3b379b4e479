#!/usr/bin/env python
"""Hummingbird in-context segmentation table: one row per (training file set, memory size).

Each row builds a memory bank from the training split (the protocol preset's patch selection and
augmentation), evaluates on the validation split, and writes ``ROWS/<row>.json``; rows whose JSON exists
are skipped, so an interrupted run resumes. Data-efficient rows take the official file sets by name:
``--filesets voc:1/128`` runs all five seeds and reports their mean ± std (sample standard deviation).
``summary.json``, ``summary.md`` and ``summary.csv`` collect all rows and the per-seed aggregates;
``miou_vs_memory``, ``miou_vs_fraction`` and ``per_class_iou`` (PNG and SVG) plot them (mean ± std over
seeds, one line per backbone).

Example (Pascal VOC, DINO ViT-S/16, the three Hummingbird memory sizes)::

    python eval/hbird_table.py --dataset voc --data-root data/VOCdevkit --backbone dino_vits16 \\
        --weights weights/dino_deitsmall16_pretrain.pth --out-dir runs/voc_dino_vits16 \\
        --filesets voc:1/128 voc:1/64 --protocol-preset open-hbird
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import harness
import numpy as np

from fungi_dense.variants import DEFAULT_VARIANT, VARIANTS
from hummingbird.building import build_sharded_bank
from hummingbird.catalog import DEFAULT_SPLITS
from hummingbird.datasets.filesets import expand_fileset, is_named
from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.registry import DATASET_KINDS, load_dataset
from hummingbird.datasets.transforms import EvalResize
from hummingbird.evaluation.protocols import PROTOCOLS
from hummingbird.files.atomic import write_json
from hummingbird.memory.shards import ShardedBank, write_manifest
from hummingbird.pipeline import build_memory_bank, evaluate, make_decoder
from hummingbird.settings import FungiOptions, Settings, encoder_for, features_for, input_size_for

HUMMINGBIRD_MEMORY_SIZES = (1024 * 10**2, 1024 * 10**3, 1024 * 10**4)


def build_parser(dataset: str | None = None) -> argparse.ArgumentParser:
    p = harness.parser(__doc__)
    p.description += " Resumable; writes JSON per row."
    harness.add_data_args(p, dataset=dataset, splits=True, choices=DATASET_KINDS)
    p.add_argument("--filesets", nargs="*", default=[],
                   help="training file sets (data-efficient rows): official names such as voc:1/128 (all five "
                        "seeds, reported as mean ± std), voc:1/128:42 (one seed), ade20k:1/64, or id-list files; "
                        "the full split is always a row too unless --no-full")
    p.add_argument("--no-full", action="store_true", help="only the --filesets rows")
    p.add_argument("--memory-sizes", type=int, nargs="+", default=list(HUMMINGBIRD_MEMORY_SIZES))
    p.add_argument("--augmentation-epochs", type=int, default=1)
    p.add_argument("--no-augment", action="store_true", help="plain resize instead of the preset's augmentation")
    p.add_argument("--protocol-preset", choices=tuple(PROTOCOLS), default="default",
                   help="default: this toolkit's settings; open-hbird: open-hummingbird-eval 2.0.0's (README 'Fidelity')")
    p.add_argument("--pos-embed", choices=("official", "timm"), default=None,
                   help="position-embedding resampling (default: official for DINO/DINOv2, else timm)")
    harness.add_backbone_args(p, backbone=None, required=True)
    p.add_argument("--input-size", type=int, default=None, help="default 512 (504 for /14)")
    p.add_argument("--k", type=int, default=30)
    p.add_argument("--temperature", type=float, default=0.02)
    p.add_argument("--index", default=None, help="auto (exact, clustered above 40k patches on CPU), exact, clustered, "
                                                 "or a faiss factory string (default: the preset's: auto; open-hbird: Flat)")
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
    p.add_argument("--fungi-objective-variant", choices=list(VARIANTS), default=DEFAULT_VARIANT,
                   help="form of the FUNGI InfoNCE objective (see the README's FUNGI section); rows of a "
                        "non-default variant carry its name")
    p.add_argument("--fungi-seed", type=int, default=0, help="seed of the FUNGI head, projection and subsampling")
    harness.add_runtime_args(p, batch_size=16, num_workers=4)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--dry-run", action="store_true", help="print the planned rows and their memory, run nothing")
    p.add_argument("--no-plots", action="store_true", help="write JSON, Markdown and CSV only")
    return p


def main(argv: list[str] | None = None, dataset: str | None = None) -> int:
    args = build_parser(dataset).parse_args(argv)
    out_dir = Path(args.out_dir)
    train_split = args.train_split or DEFAULT_SPLITS[args.dataset][0]
    val_split = args.val_split or DEFAULT_SPLITS[args.dataset][1]
    filesets = ([None] if not args.no_full else []) + [one for spec in args.filesets for one in expand_fileset(spec)]
    rows = [(kind, fs, m) for kind in args.features for fs in filesets for m in args.memory_sizes]
    protocol = PROTOCOLS[args.protocol_preset]

    settings = Settings(backbone=args.backbone, weights=args.weights, pos_embed=args.pos_embed,
                        protocol_preset=args.protocol_preset, device=args.device, batch_size=args.batch_size,
                        num_workers=args.num_workers, seed=args.seed, progress=True)
    encoder = encoder_for(settings, protocol=protocol)  # the command line's resolution of a backbone
    size = input_size_for(args.input_size, encoder)
    for kind, fs, m in rows:
        dim = encoder.embed_dim * (1 if kind == "tokens" else 1 + len(args.fungi_objectives))
        dim = args.fungi_pca_dim if kind != "tokens" and args.fungi_pca_dim else dim
        print(f"row {_row_name(args, kind, fs, m)}: memory {m:,} patches x {dim} = "
              f"{m * dim * (2 if args.fp16 else 4) / 2**30:.2f} GiB features", file=sys.stderr)
    if args.dry_run:
        return 0

    opts = LoaderOptions(batch_size=args.batch_size, num_workers=args.num_workers, device=args.device)
    val = load_dataset(args.dataset, args.data_root, val_split, EvalResize(size),
                       **protocol.dataset_options(args.dataset, "evaluation")).first(args.limit_val)
    memory_transform = EvalResize(size) if args.no_augment else protocol.memory_transform(size)
    summary, sources = [], {}
    for kind, fs, memory_size in rows:
        name = _row_name(args, kind, fs, memory_size)
        row_path = out_dir / "rows" / f"{name}.json"
        if row_path.is_file():
            print(f"{name}: done already ({row_path}), skipping", file=sys.stderr)
            summary.append(json.loads(row_path.read_text()))
            continue
        train = load_dataset(args.dataset, args.data_root, train_split, memory_transform, seed=args.seed,
                             fileset=fs, **protocol.dataset_options(args.dataset, "memory"))
        train = train.first(args.limit_train)
        if (kind, fs) not in sources:
            sources[(kind, fs)] = _feature_source(args, settings, kind, encoder, size, train, out_dir, fs)
        features = sources[(kind, fs)]
        started = time.perf_counter()
        if args.sharded:  # bank on disk, shard by shard (resumable inside the row), read memory-mapped
            bank_dir = out_dir / "banks" / name
            build_sharded_bank(features, train, bank_dir, size, memory_size=memory_size,
                               augmentation_epochs=args.augmentation_epochs, seed=args.seed, fp16=args.fp16,
                               shard_images=args.shard_images, opts=opts, protocol=protocol)
            write_manifest(bank_dir, len(train), args.augmentation_epochs, args.shard_images)
            bank = ShardedBank(bank_dir)
        else:
            bank = build_memory_bank(features, train, size, memory_size=memory_size,
                                     augmentation_epochs=args.augmentation_epochs, seed=args.seed, fp16=args.fp16,
                                     opts=opts, protocol=protocol)
        decoder = make_decoder(bank, k=args.k, temperature=args.temperature, index_spec=args.index or protocol.search,
                               seed=args.seed, nprobe=args.nprobe, refine=args.refine, device=args.device)
        result = evaluate(features, decoder, val, opts, headline=protocol.headline_metric)
        row = {"row": name, "dataset": args.dataset, "backbone": args.backbone, "feature_kind": kind,
               "protocol_preset": protocol.name, "headline": protocol.headline_metric, "pos_embed": encoder.pos_embed,
               "fileset": fs, "train_set": _train_set(fs), "train_images": len(train), "val_images": len(val), "memory_size": memory_size,
               "memory_patches": len(bank), "input_size": size, "k": args.k, "temperature": args.temperature,
               "index": args.index or protocol.search, "search": getattr(decoder.index, "spec", None),
               "seed": args.seed, "weights": encoder.weights_id,
               "feature_dim": features.dim, "fungi": bank.metadata.get("fungi"),
               "mIoU": result["mIoU"], "open_hbird_hungarian_mIoU": result["open_hbird_hungarian_mIoU"],
               "pixel_accuracy": result["pixel_accuracy"], "per_class_iou": result["per_class_iou"],
               "seconds": round(time.perf_counter() - started, 1)}
        write_json(row_path, row)
        summary.append(row)
        print(f"{name}: mIoU {100 * row['mIoU']:.2f}, open-hbird Hungarian mIoU "
              f"{100 * row['open_hbird_hungarian_mIoU']:.2f}", file=sys.stderr)

    groups = aggregate(summary)
    harness.write_results(out_dir / "summary.json", {"rows": summary, "aggregates": groups}, args, quiet=True)
    table = harness.markdown_table(
        ["backbone", "features", "preset", "train set", "seeds", "memory", "mIoU (plain)", "mIoU (open-hbird Hungarian)"],
        [[g["backbone"], g["feature_kind"], g["protocol_preset"], g["train_set"], g["seeds"], f"{g['memory_size']:,}",
          _mean_std(g["mIoU"]), _mean_std(g["open_hbird_hungarian_mIoU"])] for g in groups])
    (out_dir / "summary.md").write_text(table + "\n")
    print(table)
    from hummingbird.visual.plots import table_plots, write_table_csv

    written = [write_table_csv(groups, args.dataset, out_dir / "summary.csv")]
    if not args.no_plots:
        written += table_plots(groups, summary, out_dir, metric=protocol.headline_metric)
    print(f"wrote {', '.join(p.name for p in written)} in {out_dir}", file=sys.stderr)
    return 0


def aggregate(rows: list[dict]) -> list[dict]:
    """Rows that differ only in the file-set seed, as one entry each: mean and sample std of both mIoUs."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        key = (r["backbone"], r["feature_kind"], r.get("protocol_preset", "default"), r.get("train_set", "full"),
               r["memory_size"])
        groups.setdefault(key, []).append(r)
    out = []
    for (backbone, kind, preset, train_set, memory_size), members in groups.items():
        entry = {"backbone": backbone, "feature_kind": kind, "protocol_preset": preset, "train_set": train_set,
                 "memory_size": memory_size, "seeds": len(members), "rows": [m["row"] for m in members]}
        for metric in ("mIoU", "open_hbird_hungarian_mIoU"):
            values = np.array([m[metric] for m in members])
            entry[metric] = {"mean": float(values.mean()),
                             "std": float(values.std(ddof=1)) if len(values) > 1 else None,
                             "values": values.tolist()}
        out.append(entry)
    return out


def _mean_std(stats: dict) -> str:
    mean = f"{100 * stats['mean']:.1f}"
    return mean if stats["std"] is None else f"{mean} ± {100 * stats['std']:.1f}"


def _train_set(fileset: str | None) -> str:
    """The training set a row's file set belongs to, without its seed (``voc:1/128``, a file's stem, ``full``)."""
    if fileset is None:
        return "full"
    if is_named(fileset):
        return fileset.rsplit(":", 1)[0] if fileset.count(":") == 2 else fileset
    return Path(fileset).stem

def _feature_source(args, settings: Settings, kind: str, encoder, size: int, train, out_dir: Path,
                    fileset: str | None):
    """Plain tokens, or FUNGI with a support memory built from this row's training images (kept on disk
    under ``out_dir/support/`` and reused on resume), resolved as the command line does."""
    support_train = train.subset([s.id for s in train.samples], "training images")
    support_train.transform = EvalResize(size)
    support_path = out_dir / "support" / f"{args.dataset}_{args.backbone}_{_subset_label(fileset)}_{size}.safetensors"
    fungi = FungiOptions(support=str(support_path), objectives=tuple(args.fungi_objectives),
                         projection=kind.split("-")[-1], pca_dim=args.fungi_pca_dim,
                         objective_variant=args.fungi_objective_variant, seed=args.fungi_seed,
                         support_fraction=args.fungi_support_fraction, support_index=args.fungi_support_index)
    row = replace(settings, features="tokens" if kind == "tokens" else "fungi", fungi=fungi)
    return features_for(row, encoder, size, training=support_train if kind != "tokens" else None)


def _subset_label(fileset: str | None) -> str:
    """A file-name-safe label of a file set: ``voc-1-128-s42`` for ``voc:1/128:42``, a file's stem, ``full``."""
    if fileset is None:
        return "full"
    if is_named(fileset):
        dataset, fraction, *seed = fileset.split(":")
        return "-".join([dataset, fraction.replace("/", "-")] + [f"s{s}" for s in seed])
    return Path(fileset).stem


def _row_name(args, kind: str, fileset: str | None, memory_size: int) -> str:
    preset = "" if args.protocol_preset == "default" else f"_{args.protocol_preset}"
    if kind != "tokens" and args.fungi_objective_variant != DEFAULT_VARIANT:
        kind = f"{kind}-{args.fungi_objective_variant}"
    return f"{args.dataset}_{args.backbone}_{kind}{preset}_{_subset_label(fileset)}_m{memory_size}"


if __name__ == "__main__":
    sys.exit(main())
