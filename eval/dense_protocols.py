#!/usr/bin/env python
"""Linear-probe and overclustering table rows for a backbone (the dense evaluations reported beside
Hummingbird): one resumable JSON per row, ``summary.json`` and ``summary.md``.

    python eval/dense_protocols.py --dataset voc --data-root data/VOCdevkit --backbone dino_vits16 \\
        --weights weights/dino_deitsmall16_pretrain.pth --clusters 21 500 --out-dir runs/voc_protocols
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import harness

from hummingbird.catalog import DEFAULT_INPUT_SIZE, DEFAULT_SPLITS
from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.registry import DATASET_KINDS, load_dataset
from hummingbird.datasets.transforms import EvalResize
from hummingbird.evaluation import probes
from hummingbird.files.atomic import write_json
from hummingbird.models.backbones import encoder_from_weights_file
from hummingbird.models.features import TokenFeatures


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    harness.add_data_args(p, dataset=None, choices=DATASET_KINDS)
    harness.add_backbone_args(p, backbone=None)
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--clusters", type=int, nargs="+", default=None, help="K values (default: class count and 500)")
    p.add_argument("--probe-epochs", type=int, default=20)
    p.add_argument("--probe-lr", type=float, default=1e-3)
    p.add_argument("--limit-train", type=int, default=None)
    p.add_argument("--limit-val", type=int, default=None)
    harness.add_runtime_args(p, batch_size=16, num_workers=4)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--dry-run", action="store_true", help="print the planned rows, run nothing")
    args = p.parse_args(argv)

    features = TokenFeatures(encoder_from_weights_file(args.backbone, args.weights)).to(args.device)
    size = args.input_size or DEFAULT_INPUT_SIZE.get(features.patch_size, 512)
    train_split, val_split = DEFAULT_SPLITS[args.dataset]
    val = load_dataset(args.dataset, args.data_root, val_split, EvalResize(size)).first(args.limit_val)
    names = list(val.class_names)
    rows = ["linear"] + [f"overcluster_k{k}" for k in (args.clusters or [len(names), 500])]
    backbone = features.encoder.name
    for row in rows:
        print(f"row {args.dataset}_{backbone}_{row}: {len(val)} val images at {size}px", file=sys.stderr)
    if args.dry_run:
        return 0
    out_dir = Path(args.out_dir)
    opts = LoaderOptions(batch_size=args.batch_size, num_workers=args.num_workers, device=args.device)
    val_feats = val_masks = None
    summary = []
    for row in rows:
        path = out_dir / "rows" / f"{args.dataset}_{backbone}_{row}.json"
        if path.is_file():
            summary.append(json.loads(path.read_text()))
            continue
        if val_feats is None:
            val_feats, val_masks = probes.encode_split(features, val, opts, f"encode {val_split}")
        if row == "linear":
            train = load_dataset(args.dataset, args.data_root, train_split, EvalResize(size)).first(args.limit_train)
            train_feats, train_masks = probes.encode_split(features, train, opts, f"encode {train_split}")
            probe = probes.train_linear_probe(train_feats, train_masks, len(names), args.probe_epochs, args.probe_lr,
                                              seed=args.seed)
            result = probes.linear_probe_scores(probe, val_feats, val_masks, names)
        else:
            k = int(row.split("_k")[1])
            result = probes.overcluster_scores(probes.cluster_patches(val_feats, k, seed=args.seed), val_masks, k, names)
        record = {"row": row, "dataset": args.dataset, "backbone": backbone, "weights": features.encoder.weights_id,
                  "input_size": size, "val_images": len(val), "mIoU": result["mIoU"],
                  "per_class_iou": result["per_class_iou"]}
        write_json(path, record)
        summary.append(record)
        print(f"{row}: mIoU {100 * result['mIoU']:.2f}", file=sys.stderr)
    harness.write_results(out_dir / "summary.json", {"rows": summary}, args, quiet=True)
    table = harness.markdown_table(["backbone", "protocol", "mIoU"],
                                   [[r["backbone"], r["row"], f"{100 * r['mIoU']:.1f}"] for r in summary])
    (out_dir / "summary.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
