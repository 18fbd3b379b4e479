#!/usr/bin/env python
"""Effect of each FUNGI objective variant on Hummingbird retrieval, against plain tokens.

Same images, memory and decoder for every source: plain tokens and each variant of
``--fungi-objective-variant``. The memory holds every labelled patch of the training images (plain
resize, no augmentation); one support memory (half of the training patches) serves every variant.
Per source it writes ``sources/<name>.json`` (mIoU, pixel accuracy, negative softmax-mass share, time)
and ``sources/<name>.npz`` (per-image predictions and confusion matrices); finished sources are
skipped, so an interrupted run resumes. ``summary.json`` and ``summary.md`` then give, per source:
mIoU; the FUNGI − tokens mIoU gap and each variant's gap to ``--baseline-variant``, with paired
bootstrap 95 % intervals over validation images (per-image confusion matrices, images resampled with
replacement); pixel agreement of predictions with tokens and with every other source; and, per variant, the mean per-patch cosine of its gradients
to each other variant's and to its own gradients with the support memory replaced by random vectors.

    python eval/fungi_variants.py --data-root ../shared/voc --backbone dinov2_vits14 \\
        --weights ../shared/weights/dinov2_vits14_imgfocus.pth --input-size 224 \\
        --train-images 100 --val-images 100 --out-dir runs/fungi_variants
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import harness
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from tqdm.auto import tqdm

from fungi_dense.features import FungiConfig, FungiFeatures, image_seeds
from fungi_dense.objectives import negative_mass_share
from fungi_dense.support import SupportMemory, build_support_memory
from fungi_dense.variants import VARIANTS
from hummingbird.catalog import DEFAULT_SPLITS
from hummingbird.datasets.base import IGNORE_INDEX
from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.registry import DATASET_KINDS, load_dataset
from hummingbird.datasets.transforms import EvalResize
from hummingbird.evaluation.metrics import scores
from hummingbird.files.atomic import atomic_path, write_json
from hummingbird.models.backbones import encoder_from_weights_file
from hummingbird.models.features import TokenFeatures
from hummingbird.pipeline import build_memory_bank, make_decoder

TOKENS = "tokens"


def build_parser() -> argparse.ArgumentParser:
    p = harness.parser(__doc__)
    harness.add_data_args(p, splits=True, choices=DATASET_KINDS)
    p.add_argument("--train-images", type=int, default=100, help="first N training images (memory and support)")
    p.add_argument("--val-images", type=int, default=100, help="first N validation images")
    harness.add_backbone_args(p, backbone=None)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--fungi-projection", choices=("fast", "dense"), default="fast")
    p.add_argument("--fungi-seed", type=int, default=0, help="seed of the head, projection and subsampling")
    p.add_argument("--support-fraction", type=float, default=0.5)
    p.add_argument("--k", type=int, default=30)
    p.add_argument("--temperature", type=float, default=0.02)
    p.add_argument("--baseline-variant", default="dense-reference", choices=list(VARIANTS),
                   help="variants are also compared with this one (paired bootstrap), when it is run")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples of the validation images")
    p.add_argument("--diagnostic-images", type=int, default=4,
                   help="validation images for the gradient cosines (0: skip)")
    harness.add_runtime_args(p, batch_size=8, num_workers=2)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--no-progress", action="store_true")
    return p


# ----------------------------------------------------------------------------- statistics

def miou(matrix: np.ndarray) -> float:
    """Plain mIoU of a ``(C, C)`` confusion matrix (classes absent from ground truth and predictions
    left out), as ``hummingbird.evaluation.metrics.scores``."""
    return scores(matrix)["mIoU"]


def paired_bootstrap_gap(confusions_a: np.ndarray, confusions_b: np.ndarray, resamples: int = 2000,
                         seed: int = 0) -> dict:
    """mIoU(a) − mIoU(b) on the same images, with a percentile 95 % interval from resampling images.

    Args:
        confusions_a, confusions_b: ``(N, C, C)`` per-image confusion matrices of two methods on the
            same ``N`` images, in the same order.
        resamples: bootstrap draws of ``N`` images with replacement.

    Returns:
        ``{"gap", "low", "high", "resamples"}``; ``gap`` is on all images.
    """
    if confusions_a.shape != confusions_b.shape:
        raise ValueError(f"paired bootstrap needs the same images: {confusions_a.shape} vs {confusions_b.shape}")
    n = len(confusions_a)
    rng = np.random.default_rng(seed)
    a, b = confusions_a.reshape(n, -1).astype(np.float64), confusions_b.reshape(n, -1).astype(np.float64)
    shape = confusions_a.shape[1:]
    gaps = np.empty(resamples)
    for r in range(resamples):
        weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        gaps[r] = miou((weights @ a).reshape(shape)) - miou((weights @ b).reshape(shape))
    low, high = np.percentile(gaps, [2.5, 97.5])
    return {"gap": miou(confusions_a.sum(0)) - miou(confusions_b.sum(0)), "low": float(low), "high": float(high),
            "resamples": resamples}


def pixel_agreement(predictions_a: np.ndarray, predictions_b: np.ndarray, valid: np.ndarray) -> float:
    """Share of ``valid`` pixels (ground truth not void) where two label maps ``(N, H, W)`` agree."""
    return float((predictions_a == predictions_b)[valid].mean())


# ----------------------------------------------------------------------------- one source

def _confusion(prediction: np.ndarray, target: np.ndarray, classes: int) -> np.ndarray:
    keep = target != IGNORE_INDEX
    return np.bincount(target[keep].astype(np.int64) * classes + prediction[keep], minlength=classes**2
                       ).reshape(classes, classes)


def run_source(name: str, features, train, val, size: int, args, out_dir: Path) -> dict:
    """Build the memory with ``features``, label every validation image; write ``sources/<name>.*``."""
    opts = LoaderOptions(batch_size=args.batch_size, num_workers=args.num_workers, device=args.device,
                         progress=not args.no_progress)
    started = time.perf_counter()
    bank = build_memory_bank(features, train, size, seed=args.seed, opts=opts)
    decoder = make_decoder(bank, k=args.k, temperature=args.temperature, seed=args.seed)
    classes = val.num_classes
    predictions, confusions, masks = [], [], []
    loader = torch.utils.data.DataLoader(val, batch_size=args.batch_size, num_workers=args.num_workers)
    for batch in tqdm(loader, desc=f"{name}: evaluate", disable=args.no_progress, unit="batch"):
        query = features(batch["image"].to(args.device), image_ids=list(batch["id"])).cpu()
        labels = decoder.predict(query, tuple(batch["mask"].shape[-2:])).numpy().astype(np.uint8)
        for prediction, target in zip(labels, batch["mask"].numpy()):
            predictions.append(prediction)
            confusions.append(_confusion(prediction, target, classes))
            masks.append(target)
    confusions = np.stack(confusions)
    result = {"source": name, "mIoU": miou(confusions.sum(0)),
              "pixel_accuracy": scores(confusions.sum(0))["pixel_accuracy"], "memory_patches": len(bank),
              "feature_dim": features.dim, "seconds": round(time.perf_counter() - started, 1),
              "fungi": bank.metadata.get("fungi")}
    if isinstance(features, FungiFeatures):
        result["negative_mass_share"] = _mass_share(features, val, args)
    with atomic_path(out_dir / "sources" / f"{name}.npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, predictions=np.stack(predictions), confusions=confusions,
                            masks=np.stack(masks).astype(np.uint8))
    write_json(out_dir / "sources" / f"{name}.json", result)  # written last: marks the source done
    return result


@torch.no_grad()
def _mass_share(features: FungiFeatures, val, args) -> float:
    """Mean share of the InfoNCE softmax denominator held by the negatives, over the anchors of the
    first ``--diagnostic-images`` (at least 1) validation images."""
    shares = []
    for i in range(min(len(val), max(1, args.diagnostic_images))):
        sample = val[i]
        images = sample["image"][None].to(args.device)
        encoder = features.encoder
        tokens, prefix = encoder.tokens_and_prefix_from_normalised(encoder.normalise(images))
        flat = rearrange(tokens.float(), "b h w d -> b (h w) d")
        anchors = torch.cat([prefix[:, :1].float(), flat], 1) if features.variant.class_token else flat
        negatives, mask = features.negatives(anchors, [sample["id"]], image_seeds(images, features.config.negatives_seed))
        shares.append(negative_mass_share(features.latents(anchors), negatives, features.config.temperature, mask,
                                          features.variant.temperature_on).mean().item())
    return float(np.mean(shares))


# ----------------------------------------------------------------------------- gradient diagnostics

def gradient_cosines(sources: dict[str, FungiFeatures], val, args) -> dict:
    """Mean per-patch cosine between variants' layer gradients (equal to the cosine of the full
    per-patch gradients ``g ⊗ [a; 1]``, which share ``a``), and of each variant to itself with its
    support memory replaced by as many random unit vectors."""
    count = min(len(val), args.diagnostic_images)
    samples = [val[i] for i in range(count)]
    images = torch.stack([s["image"] for s in samples]).to(args.device)
    ids = [s["id"] for s in samples]
    grads = {name: f.gradients(images, ids)[2][0].float().cpu() for name, f in sources.items()}
    out = {"images": count, "between": {a: {b: float(F.cosine_similarity(grads[a], grads[b], dim=-1).mean())
                                            for b in grads} for a in grads}, "random_support": {}}
    for name, f in sources.items():
        real = f.support
        g = torch.Generator().manual_seed(args.seed)
        noise = F.normalize(torch.randn(real.tokens.shape, generator=g), dim=-1)
        f.support = SupportMemory(noise, real.image_index, real.image_ids, dict(real.metadata))
        try:
            noisy = f.gradients(images, ids)[2][0].float().cpu()
        finally:
            f.support = real
        out["random_support"][name] = float(F.cosine_similarity(noisy, grads[name], dim=-1).mean())
    return out


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out_dir = Path(args.out_dir)
    encoder = encoder_from_weights_file(args.backbone, args.weights).to(args.device)
    size = args.input_size
    encoder.check_input_size(size, size)
    train_split = args.train_split or DEFAULT_SPLITS[args.dataset][0]
    val_split = args.val_split or DEFAULT_SPLITS[args.dataset][1]
    train = load_dataset(args.dataset, args.data_root, train_split, EvalResize(size)).first(args.train_images)
    val = load_dataset(args.dataset, args.data_root, val_split, EvalResize(size)).first(args.val_images)
    print(f"{encoder.name}: {len(train)} {train_split} / {len(val)} {val_split} images at {size} px, "
          f"memory = every labelled patch, k={args.k}", file=sys.stderr)

    support_path = out_dir / "support.safetensors"
    if support_path.is_file():
        support = SupportMemory.load(support_path)
        support.check_compatible(dict(encoder.metadata(), input_size=size))
    else:
        support = build_support_memory(encoder, train, size, fraction=args.support_fraction, seed=args.seed,
                                       opts=LoaderOptions(batch_size=args.batch_size, num_workers=args.num_workers,
                                                          device=args.device, progress=not args.no_progress))
        support.save(support_path)
    fungi = {name: FungiFeatures(encoder, support, FungiConfig(
        objective_variant=name, projection=args.fungi_projection, head_seed=args.fungi_seed,
        projection_seed=args.fungi_seed, negatives_seed=args.fungi_seed)) for name in args.variants}
    sources = {TOKENS: TokenFeatures(encoder), **fungi}

    results = {}
    for name, features in sources.items():
        done = out_dir / "sources" / f"{name}.json"
        if done.is_file():
            print(f"{name}: done already ({done}), skipping", file=sys.stderr)
            results[name] = json.loads(done.read_text())
            continue
        results[name] = run_source(name, features, train, val, size, args, out_dir)
        print(f"{name}: mIoU {100 * results[name]['mIoU']:.2f} ({results[name]['seconds']} s)", file=sys.stderr)

    arrays = {name: np.load(out_dir / "sources" / f"{name}.npz") for name in sources}
    valid = arrays[TOKENS]["masks"] != IGNORE_INDEX
    predictions = {name: a["predictions"] for name, a in arrays.items()}
    rows = []
    for name in sources:
        row = {"source": name, "mIoU": results[name]["mIoU"],
               "agreement": {other: pixel_agreement(predictions[name], predictions[other], valid) for other in sources},
               "negative_mass_share": results[name].get("negative_mass_share"), "seconds": results[name]["seconds"]}
        if name != TOKENS:
            row["gap_to_tokens"] = paired_bootstrap_gap(arrays[name]["confusions"], arrays[TOKENS]["confusions"],
                                                        args.bootstrap, args.seed)
        if name not in (TOKENS, args.baseline_variant) and args.baseline_variant in arrays:
            row["gap_to_baseline"] = paired_bootstrap_gap(arrays[name]["confusions"],
                                                          arrays[args.baseline_variant]["confusions"],
                                                          args.bootstrap, args.seed)
        rows.append(row)
    cosines = gradient_cosines(fungi, val, args) if args.diagnostic_images and fungi else None
    summary = {"config": {"backbone": encoder.name, "weights": encoder.weights_id, "input_size": size,
                          "train_images": len(train), "val_images": len(val), "k": args.k,
                          "temperature": args.temperature, "projection": args.fungi_projection,
                          "support_patches": len(support), "seed": args.seed, "device": args.device,
                          "bootstrap": args.bootstrap, "baseline_variant": args.baseline_variant},
               "rows": rows, "gradient_cosines": cosines}
    harness.write_results(out_dir / "summary.json", summary, args, quiet=True)
    table = format_table(summary)
    (out_dir / "summary.md").write_text(table + "\n")
    print(table)
    print(f"\nwrote {out_dir / 'summary.json'} and {out_dir / 'summary.md'}")
    return 0


def format_table(summary: dict) -> str:
    rows = summary["rows"]
    names = [r["source"] for r in rows]
    baseline = summary["config"]["baseline_variant"]

    def gap(g):
        return "" if g is None else f"{100 * g['gap']:+.2f} [{100 * g['low']:+.2f}, {100 * g['high']:+.2f}]"

    lines = [harness.markdown_table(
        ["source", "mIoU", "− tokens [95 % CI]", f"− {baseline} [95 % CI]", "agreement with tokens",
         "negatives' softmax share"],
        [[r["source"], f"{100 * r['mIoU']:.2f}", gap(r.get("gap_to_tokens")), gap(r.get("gap_to_baseline")),
          f"{100 * r['agreement'][TOKENS]:.1f} %",
          "" if r["negative_mass_share"] is None else f"{100 * r['negative_mass_share']:.1f} %"] for r in rows])]
    lines += ["", harness.markdown_table(["pixel agreement (%)", *names], [
        [r["source"], *(f"{100 * r['agreement'][n]:.1f}" for n in names)] for r in rows])]
    cos = summary.get("gradient_cosines")
    if cos:
        variants = list(cos["between"])
        lines += ["", harness.markdown_table(
            [f"per-patch gradient cosine ({cos['images']} images)", *variants, "same, random support"],
            [[a, *(f"{cos['between'][a][b]:.4f}" for b in variants), f"{cos['random_support'][a]:.4f}"]
             for a in variants])]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
