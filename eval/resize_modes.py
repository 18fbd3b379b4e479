#!/usr/bin/env python
"""Which way of feeding non-square images gives the best labels? ``segment``'s resize modes
(``square``: squash to S²; ``aspect``: short side S, one pass; ``slide``: short side S, S² windows
stitched on the patch grid; see ``hummingbird.memory.tiling``) compared by mIoU against the ground truth at each
image's own resolution, with one memory bank built from real training images (plain resize to S², no
augmentation) through the Python API (``Segmenter.from_dataset``, ``.segment``). Prints a table and
writes JSON.

    python eval/resize_modes.py --data-root ../shared/voc --weights ../shared/weights/dinov2_vits14_imgfocus.pth \\
        --backbone dinov2_vits14 --input-size 224 --out runs/resize_modes.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hummingbird.catalog import RESIZE_MODES  # noqa: E402
from hummingbird.datasets.registry import load_dataset  # noqa: E402
from hummingbird.evaluation.metrics import ConfusionMatrix, scores  # noqa: E402
from hummingbird.files.atomic import write_json  # noqa: E402
from hummingbird.segmenter import Segmenter  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="voc")
    p.add_argument("--data-root", required=True)
    p.add_argument("--backbone", default=None)
    p.add_argument("--weights", required=True)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    p.add_argument("--train-images", type=int, default=None, help="first N training images (default: all)")
    p.add_argument("--val-images", type=int, default=None, help="first N validation images (default: all)")
    p.add_argument("--modes", nargs="+", default=list(RESIZE_MODES), choices=RESIZE_MODES)
    p.add_argument("--k", type=int, default=30)
    p.add_argument("--temperature", type=float, default=0.02)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    val = load_dataset(args.dataset, args.data_root, args.val_split).first(args.val_images)
    train_ids = [s.id for s in load_dataset(args.dataset, args.data_root, args.train_split).first(args.train_images).samples]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ids = Path(tmp) / "train_ids.txt"
        ids.write_text("\n".join(train_ids) + "\n")
        segmenter = Segmenter.from_dataset(args.dataset, args.data_root, args.train_split, fileset=str(ids),
                                           augment=False, backbone=args.backbone, weights=args.weights,
                                           input_size=args.input_size, k=args.k, temperature=args.temperature,
                                           batch_size=8, num_workers=2)
    size, bank = segmenter.input_size, segmenter.bank
    print(f"memory: {len(bank)} patches from {len(train_ids)} images at {size}px ({time.perf_counter() - started:.0f} s)")
    confusion = {mode: ConfusionMatrix(val.num_classes) for mode in args.modes}
    seconds = dict.fromkeys(args.modes, 0.0)
    for i in tqdm(range(len(val)), desc="val", unit="img"):
        image, mask = val.load_sample(i)
        for mode in args.modes:
            started = time.perf_counter()
            labels = segmenter.segment(image, resize_mode=mode)
            seconds[mode] += time.perf_counter() - started
            confusion[mode].update(torch.from_numpy(labels)[None], torch.from_numpy(mask)[None])
    rows = {}
    for mode in args.modes:
        result = scores(confusion[mode].matrix, list(val.class_names))
        rows[mode] = {"mIoU": result["mIoU"], "pixel_accuracy": result["pixel_accuracy"],
                      "seconds_per_image": round(seconds[mode] / len(val), 4)}
        print(f"{mode:<7} mIoU {100 * result['mIoU']:6.2f}   pixel acc {100 * result['pixel_accuracy']:6.2f}   "
              f"{seconds[mode] / len(val):.3f} s/img")
    if args.out:
        write_json(args.out, {"config": {**{k: v for k, v in vars(args).items() if k != "out"},
                                         "train_used": len(train_ids), "val_used": len(val), "memory_patches": len(bank)},
                              "modes": rows})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
