#!/usr/bin/env python
"""Fidelity of the ``open-hbird`` preset with memory augmentation: how much random draws alone move it.

The peer's augmented answers cannot be compared pixel for pixel (they come from its own random stream),
so this measures the sizes that remain: on the peer's 200 training / 100 evaluation VOC ids, with its
settings (224 px, k = 30, τ = 0.02, exact search) and augmentation epochs, for each memory size and seed
it builds the preset's bank and reports the Hungarian mIoU (mean ± sample std over seeds) and the pixel
agreement between seeds. ``--variants tensor-jitter`` also reruns each seed with the colour jitter done by
torchvision's uint8-tensor kernels (the preset before issue 18) instead of the peer's Pillow kernels, with
the same draws, so the paired difference is that change alone.

    python eval/fidelity_open_hbird_augmented.py --seeds 0 1 2 3 4 --variants peer tensor-jitter \\
        --out runs/fidelity_open_hbird_augmented.json
"""

from __future__ import annotations

import itertools
import sys

import harness
import numpy as np
import torch
from PIL import Image

from hummingbird.datasets.base import IGNORE_INDEX
from hummingbird.datasets.classes import VOC_CLASSES
from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.registry import load_dataset
from hummingbird.datasets.transforms import JITTER_OPS, EvalResize, OpenHbirdAugment, OpenHbirdDraw
from hummingbird.evaluation.fidelity import PeerAnswers
from hummingbird.evaluation.metrics import ConfusionMatrix
from hummingbird.evaluation.protocols import PROTOCOLS
from hummingbird.models.backbones import load_backbone
from hummingbird.models.features import TokenFeatures
from hummingbird.pipeline import build_memory_bank, make_decoder, predictions, summarise


class TensorJitterAugment(OpenHbirdAugment):
    """The same draws, with the colour jitter done by torchvision's uint8-tensor kernels."""

    def apply(self, image, mask, draw):
        from torchvision.transforms.v2 import functional as TF

        pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        for op, factor in zip(JITTER_OPS, draw.jitter):
            if factor is not None:
                pixels = getattr(TF, f"adjust_{op}")(pixels, factor)
        jittered = Image.fromarray(pixels.permute(1, 2, 0).numpy())
        return super().apply(jittered, mask, OpenHbirdDraw((None,) * len(JITTER_OPS), draw.box))


VARIANTS = {"peer": OpenHbirdAugment, "tensor-jitter": TensorJitterAugment}


class ReusedFeatures:
    """A feature source that computes each (tag, epoch, image) once: the bounded and unbounded banks of
    a seed share their augmented views, every run shares the evaluation images."""

    def __init__(self, features: TokenFeatures):
        self.features, self.tag, self.epoch_of, self.cache = features, None, None, {}
        self.patch_size, self.dim, self.kind = features.patch_size, features.dim, features.kind

    def metadata(self) -> dict:
        return self.features.metadata()

    def __call__(self, images: torch.Tensor, image_ids=None) -> torch.Tensor:
        keys = [(self.tag, self.epoch_of(), i) for i in image_ids]
        missing = [n for n, k in enumerate(keys) if k not in self.cache]
        if missing:
            for n, f in zip(missing, self.features(images[missing], [image_ids[n] for n in missing])):
                self.cache[keys[n]] = f
        return torch.stack([self.cache[k] for k in keys])

    def forget(self, keep_tag) -> None:
        self.cache = {k: v for k, v in self.cache.items() if k[0] == keep_tag}


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--peer-dir", default=str(harness.SHARED / "peers" / "open-hbird"),
                   help="the peer's ids and settings")
    p.add_argument("--data-root", default=str(harness.SHARED / "voc"), help="Pascal VOC root holding the peer's ids")
    harness.add_backbone_args(p, weights=str(harness.SHARED_WEIGHTS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--augmentation-epochs", type=int, default=2)
    p.add_argument("--memory-sizes", nargs="+", default=["20480", "none"], help="patches, or none (unbounded)")
    p.add_argument("--variants", nargs="+", default=["peer"], choices=sorted(VARIANTS))
    p.add_argument("--limit", type=int, default=None, help="first N training and evaluation ids (smoke runs)")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--no-progress", action="store_true")
    harness.add_out_arg(p, "runs/fidelity_open_hbird_augmented.json")
    args = p.parse_args(argv)

    protocol = PROTOCOLS["open-hbird"]
    peer = PeerAnswers.load(args.peer_dir)
    size, k, tau = int(peer.settings["input_size"]), int(peer.settings["k"]), float(peer.settings["temperature"])
    train_ids, val_ids = peer.train_ids[: args.limit], peer.ids[: args.limit]
    memory_sizes = [None if m == "none" else int(m) for m in args.memory_sizes]
    opts = LoaderOptions(batch_size=args.batch_size, num_workers=0, progress=not args.no_progress)
    encoder = load_backbone(args.backbone, weights=args.weights, normalisation=protocol.normalisation)
    features = ReusedFeatures(TokenFeatures(encoder))
    val = load_dataset("voc", args.data_root, "val", EvalResize(size)).subset(val_ids, "peer evaluation ids")

    runs, preds = [], {}
    for variant, seed in itertools.product(args.variants, args.seeds):
        train = load_dataset("voc", args.data_root, "trainaug", VARIANTS[variant](size),
                             seed=seed).subset(train_ids, "peer training ids")
        features.tag, features.epoch_of = (variant, seed), lambda: train.epoch
        for memory in memory_sizes:
            bank = build_memory_bank(features, train, size, memory_size=memory, seed=seed, opts=opts,
                                     augmentation_epochs=args.augmentation_epochs, protocol=protocol)
            decoder = make_decoder(bank, k=k, temperature=tau, index_spec=protocol.search)
            features.tag, features.epoch_of = "evaluation", lambda: 0
            confusion, maps = ConfusionMatrix(len(VOC_CLASSES), IGNORE_INDEX), []
            for predicted in predictions(features, decoder, val, opts):
                confusion.update(predicted.labels, predicted.masks)
                maps.append(predicted.labels.cpu().to(torch.uint8))
            features.tag, features.epoch_of = (variant, seed), lambda: train.epoch
            result = summarise(confusion.matrix, list(VOC_CLASSES), headline=protocol.headline_metric)
            preds[variant, seed, memory] = torch.cat(maps).numpy()
            runs.append({"variant": variant, "seed": seed, "memory_size": memory, "memory_rows": len(bank),
                         "open_hbird_hungarian_mIoU": result["open_hbird_hungarian_mIoU"], "mIoU": result["mIoU"]})
            print(f"{variant} seed {seed} memory {memory}: Hungarian mIoU "
                  f"{result['open_hbird_hungarian_mIoU']:.5f} ({len(bank)} rows)", file=sys.stderr)
        features.forget("evaluation")

    valid = peer.gt[: len(val_ids)] != IGNORE_INDEX
    agree = lambda a, b: float((preds[a] == preds[b])[valid].mean())  # noqa: E731
    summary = []
    print(f"open-hbird preset, {len(train_ids)} train / {len(val_ids)} val VOC ids, {size} px, "
          f"{args.augmentation_epochs} augmentation epochs, seeds {args.seeds}\n")
    table = []
    for memory, variant in itertools.product(memory_sizes, args.variants):
        values = np.array([r["open_hbird_hungarian_mIoU"] for r in runs
                           if r["variant"] == variant and r["memory_size"] == memory])
        pairs = [agree((variant, a, memory), (variant, b, memory)) for a, b in itertools.combinations(args.seeds, 2)]
        row = {"memory_size": memory, "variant": variant, "mean": float(values.mean()),
               "std": float(values.std(ddof=1)) if len(values) > 1 else None,
               "min": float(values.min()), "max": float(values.max()),
               "seed_pair_pixel_agreement": [min(pairs), max(pairs)] if pairs else None}
        summary.append(row)
        spread = f"{row['mean']:.4f} ± {row['std']:.4f}" if row["std"] is not None else f"{row['mean']:.4f}"
        agreement = f"{100 * min(pairs):.1f}–{100 * max(pairs):.1f} %" if pairs else "-"
        table.append([memory or "unbounded", variant, spread, f"{row['min']:.4f}–{row['max']:.4f}", agreement])
    print(harness.markdown_table(["memory", "jitter kernels", "Hungarian mIoU, mean ± std over seeds", "range",
                                  "pixel agreement between seeds"], table))
    if len(args.variants) > 1:
        table = []
        for memory in memory_sizes:
            by_seed = {(r["variant"], r["seed"]): r["open_hbird_hungarian_mIoU"] for r in runs
                       if r["memory_size"] == memory}
            diffs = np.array([by_seed["peer", s] - by_seed["tensor-jitter", s] for s in args.seeds])
            agreement = [agree(("peer", s, memory), ("tensor-jitter", s, memory)) for s in args.seeds]
            summary.append({"memory_size": memory, "pillow_minus_tensor": diffs.tolist(),
                            "pillow_vs_tensor_pixel_agreement": agreement})
            per_seed = ", ".join(f"{d:+.4f}" for d in diffs)
            table.append([memory or "unbounded", f"{diffs.mean():+.4f} (per seed {per_seed})",
                          f"{100 * min(agreement):.1f}–{100 * max(agreement):.1f} %"])
        print("\n" + harness.markdown_table(["memory", "Pillow − tensor kernels, same draws: Hungarian mIoU",
                                             "pixel agreement"], table))
    harness.write_results(args.out, {"runs": runs, "summary": summary}, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
