#!/usr/bin/env python
"""Fidelity to open-hummingbird-eval: the ``open-hbird`` preset against the peer's own shipped answers.

Runs the preset on the peer's training and evaluation ids with the peer's settings (224 px, unbounded
memory, no augmentation, k = 30, τ = 0.02, exact search) and the same weights, then prints and writes
(JSON) the pixel agreement on non-void pixels, both runs' plain and Hungarian mIoU, and the per-class IoU
differences. ``--ablations`` also reruns with each preset setting reverted to this toolkit's default (or to
an earlier behaviour) and reports how many of the peer's pixels each one changes.

    python eval/fidelity_open_hbird.py --out runs/fidelity_open_hbird.json --ablations
"""

from __future__ import annotations

import dataclasses
import sys

import harness
import numpy as np
import torch

from hummingbird.datasets.classes import VOC_CLASSES
from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.transforms import EvalResize
from hummingbird.evaluation.fidelity import PeerAnswers, compare_with_peer, reproduce_peer
from hummingbird.evaluation.protocols import PROTOCOLS
from hummingbird.models.backbones import load_backbone
from hummingbird.models.features import TokenFeatures


class TensorResize(EvalResize):
    """Resizes the image as a uint8 tensor (antialiased bilinear), as this toolkit did before it used Pillow."""

    def __call__(self, image, mask, seed=0):
        import torchvision.transforms.v2.functional as TF

        _, mask_t, view = super().__call__(image, mask, seed)
        pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
        return TF.resize(pixels, [self.size, self.size], antialias=True).float().div(255), mask_t, view


def ablations(preset):
    """(name, what changes, protocol, position-embedding rule, resize) for the preset and each reverted setting."""
    return [
        ("open-hbird preset", "-", preset, "official", EvalResize),
        ("normalisation", "std (0.229, 0.224, 0.225) instead of the peer's (…, 0.255)",
         dataclasses.replace(preset, normalisation=None), "official", EvalResize),
        ("position embeddings", "timm's antialiased resize instead of the official DINOv2 rule",
         preset, "timm", EvalResize),
        ("memory labels", "void pixels left out instead of counted as background",
         dataclasses.replace(preset, void_label=None), "official", EvalResize),
        ("image resampling", "uint8-tensor resize instead of Pillow's", preset, "official", TensorResize),
    ]


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--peer-dir", default=str(harness.SHARED / "peers" / "open-hbird"), help="the peer's answers folder")
    p.add_argument("--data-root", default=str(harness.SHARED / "voc"), help="Pascal VOC root holding the peer's ids")
    harness.add_backbone_args(p, weights=str(harness.SHARED_WEIGHTS), weights_help="the weights file the peer used")
    p.add_argument("--ablations", action="store_true", help="also rerun with each preset setting reverted")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--no-progress", action="store_true")
    harness.add_out_arg(p, "runs/fidelity_open_hbird.json")
    args = p.parse_args(argv)

    peer = PeerAnswers.load(args.peer_dir)
    opts = LoaderOptions(batch_size=args.batch_size, num_workers=args.num_workers, progress=not args.no_progress)
    runs = ablations(PROTOCOLS["open-hbird"])[: None if args.ablations else 1]
    report = {"peer": peer.settings, "runs": []}
    for name, change, protocol, rule, resize in runs:
        encoder = load_backbone(args.backbone, weights=args.weights, pos_embed=rule,
                                normalisation=protocol.normalisation)
        pred, gt = reproduce_peer(peer, args.data_root, TokenFeatures(encoder), opts, protocol, resize)
        result = compare_with_peer(pred, gt, peer, list(VOC_CLASSES))
        report["runs"].append({"run": name, "change": change, **result})
        print(f"{name}: pixel agreement {100 * result['pixel_agreement']:.3f} %", file=sys.stderr)

    main_run = report["runs"][0]
    print(f"open-hbird preset vs open-hummingbird-eval 2.0.0 on {main_run['images']} VOC val images "
          f"({main_run['pixels_compared']:,} non-void pixels at {peer.settings['input_size']} px)")
    print(f"  pixel agreement            {100 * main_run['pixel_agreement']:.3f} %")
    print(f"  ground truth identical     {main_run['ground_truth_identical']}")
    print(f"  {'':<26} {'ours':>9} {'peer':>9}")
    for key, label in (("open_hbird_hungarian_mIoU", "Hungarian mIoU"), ("mIoU", "plain mIoU")):
        print(f"  {label:<26} {main_run['ours'][key]:9.5f} {main_run['peer'][key]:9.5f}")
    print(f"  {'reported by the peer':<26} {'':>9} {main_run['peer']['reported_mIoU']:9.5f}")
    worst = max(abs(v["difference"]) for v in main_run["per_class_open_hbird_hungarian_iou"].values())
    print(f"  largest per-class IoU difference {worst:.5f}")
    if args.ablations:
        print("\n" + harness.markdown_table(["setting reverted", "change", "pixels that differ from the peer"], [
            [run["run"], run["change"], f"{100 * (1 - run['pixel_agreement']):.2f} %"] for run in report["runs"]]))
    harness.write_results(args.out, report, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
