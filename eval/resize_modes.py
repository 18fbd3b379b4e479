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

import sys
import tempfile
from pathlib import Path

import harness
import torch
from harness import timed
from tqdm.auto import tqdm

from hummingbird.catalog import RESIZE_MODES
from hummingbird.datasets.registry import load_dataset
from hummingbird.evaluation.metrics import ConfusionMatrix, scores
from hummingbird.segmenter import Segmenter


def main() -> int:
    p = harness.parser(__doc__)
    harness.add_data_args(p)
    p.add_argument("--backbone", default=None, help="backbone preset (default: told from the weights file)")
    p.add_argument("--weights", required=True, help="weights file")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    p.add_argument("--train-images", type=int, default=None, help="first N training images (default: all)")
    p.add_argument("--val-images", type=int, default=None, help="first N validation images (default: all)")
    p.add_argument("--modes", nargs="+", default=list(RESIZE_MODES), choices=RESIZE_MODES)
    p.add_argument("--k", type=int, default=30)
    p.add_argument("--temperature", type=float, default=0.02)
    harness.add_out_arg(p, None)
    args = p.parse_args()
    val = load_dataset(args.dataset, args.data_root, args.val_split).first(args.val_images)
    train_ids = [s.id for s in load_dataset(args.dataset, args.data_root, args.train_split).first(args.train_images).samples]
    with tempfile.TemporaryDirectory() as tmp, timed() as clock:
        ids = harness.write_ids(Path(tmp) / "train_ids.txt", train_ids)
        segmenter = Segmenter.from_dataset(args.dataset, args.data_root, args.train_split, fileset=ids,
                                           augment=False, backbone=args.backbone, weights=args.weights,
                                           input_size=args.input_size, k=args.k, temperature=args.temperature,
                                           batch_size=8, num_workers=2)
    size, bank = segmenter.input_size, segmenter.bank
    print(f"memory: {len(bank)} patches from {len(train_ids)} images at {size}px ({clock.seconds:.0f} s)")
    confusion = {mode: ConfusionMatrix(val.num_classes) for mode in args.modes}
    seconds = dict.fromkeys(args.modes, 0.0)
    for i in tqdm(range(len(val)), desc="val", unit="img"):
        image, mask = val.load_sample(i)
        for mode in args.modes:
            with timed() as clock:
                labels = segmenter.segment(image, resize_mode=mode)
            seconds[mode] += clock.seconds
            confusion[mode].update(torch.from_numpy(labels)[None], torch.from_numpy(mask)[None])
    rows = {}
    for mode in args.modes:
        result = scores(confusion[mode].matrix, list(val.class_names))
        rows[mode] = {"mIoU": result["mIoU"], "pixel_accuracy": result["pixel_accuracy"],
                      "seconds_per_image": round(seconds[mode] / len(val), 4)}
        print(f"{mode:<7} mIoU {100 * result['mIoU']:6.2f}   pixel acc {100 * result['pixel_accuracy']:6.2f}   "
              f"{seconds[mode] / len(val):.3f} s/img")
    harness.write_results(args.out, {"config": {**{k: v for k, v in vars(args).items() if k != "out"},
                                                "train_used": len(train_ids), "val_used": len(val),
                                                "memory_patches": len(bank)}, "modes": rows}, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
