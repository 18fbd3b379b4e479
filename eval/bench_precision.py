#!/usr/bin/env python
"""Precision × processor: what bf16 (and fp16 where native) costs and changes against fp32, as a user
runs the toolkit, in one command.

On real Pascal VOC (``../shared/voc``, the first --train-images train and --val-images val ids) with the
real DINOv2 ViT-S/14 weights (``../shared/weights``), for each precision it runs the command line in
fresh processes, exactly as a user would:

    hummingbird build-memory --precision P ...   (whole run, --repeats times)
    hummingbird evaluate --bank BANK_P --precision P ...   (whole run, --repeats times)

and reports seconds per image of both (whole runs, start-up included; mean and spread), evaluate /
build, mIoU and open-hbird Hungarian mIoU and their differences from fp32, and the pixel agreement of
the saved label maps with fp32's (all pixels and labelled pixels). It also evaluates the fp32 bank
with bf16 queries (banks are searched across precisions). In process, on --numerics-images val
images: patch tokens (max abs difference, min and mean cosine against fp32), dense FUNGI features
(cosine) and the per-patch loss gradients at FUNGI's layer (cosine against fp32's). ``--features fungi``
makes the command-line runs dense FUNGI ones; ``--compile`` adds eager against ``torch.compile`` per
precision (compile time and steady speed).

    python eval/bench_precision.py --out runs/bench_precision.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import harness
import numpy as np
import torch
import torch.nn.functional as F
from harness import run_cli, spread, timed
from PIL import Image

from hummingbird.models.precision import FP32, cpu_has_native_fp16, processor, resolve_precision


def agreement(a: Path, b: Path, ids: list[str], masks: Path) -> tuple[float, float]:
    """Share of pixels (all, and labelled ones) where the label PNGs in folders ``a`` and ``b`` agree."""
    same = total = same_lab = total_lab = 0
    for i in ids:
        x, y = np.array(Image.open(a / f"{i}.png")), np.array(Image.open(b / f"{i}.png"))
        gt = np.array(Image.open(masks / f"{i}.png"))
        eq = x == y
        same, total = same + eq.sum(), total + eq.size
        labelled = gt != 255
        same_lab, total_lab = same_lab + eq[labelled].sum(), total_lab + labelled.sum()
    return float(same / total), float(same_lab / total_lab)


def cli_runs(args, root: Path, weights: str, precisions: list[str], tmp: Path) -> dict:
    common = ["--input-size", str(args.input_size), "--no-progress", "--batch-size", str(args.batch_size)]
    fungi = ["--features", "fungi"] if args.features == "fungi" else []
    rows = {}
    for precision in precisions:
        build, evaluate, val_ids = harness.voc_commands(
            root, tmp, args.train_images, args.val_images, tmp / f"bank_{precision}.safetensors",
            tmp / f"result_{precision}.json", [*common, "--precision", precision],
            build=["--backbone", args.backbone, "--weights", weights, *fungi,
                   *(["--fungi-support", str(tmp / f"support_{precision}.safetensors")] if fungi else [])])
        seconds = harness.repeated_runs({"build": build, "evaluate": evaluate}, args.repeats)
        run_cli([*evaluate, "--save-predictions", str(tmp / f"pred_{precision}")])
        result = json.loads((tmp / f"result_{precision}.json").read_text())
        rows[precision] = {"build": spread(seconds["build"], args.train_images),
                           "evaluate": spread(seconds["evaluate"], len(val_ids)),
                           "patches": result["bank"].get("num_patches"), "search": result["config"].get("search"),
                           "mIoU": result["mIoU"], "hungarian_mIoU": result["open_hbird_hungarian_mIoU"],
                           "recorded_precision": [result["bank"].get("precision"), result["config"].get("precision")]}
        rows[precision]["evaluate_over_build"] = round(rows[precision]["evaluate"]["s_per_image"]
                                                       / rows[precision]["build"]["s_per_image"], 3)
        print(f"{precision}: build {rows[precision]['build']['s_per_image']:.3f} s/image, evaluate "
              f"{rows[precision]['evaluate']['s_per_image']:.3f} s/image (ratio "
              f"{rows[precision]['evaluate_over_build']:.2f}), mIoU {100 * result['mIoU']:.2f}", flush=True)
    cross = [p for p in precisions if p != FP32]
    if cross:  # the fp32 bank queried in another precision
        p = cross[0]
        _, cross_evaluate, _ = harness.voc_commands(
            root, tmp, args.train_images, args.val_images, tmp / "bank_fp32.safetensors", tmp / "result_cross.json",
            [*common, "--precision", p], evaluate=["--save-predictions", str(tmp / "pred_cross")])
        run_cli(cross_evaluate)
        result = json.loads((tmp / "result_cross.json").read_text())
        rows[f"fp32 bank, {p} queries"] = {"mIoU": result["mIoU"], "hungarian_mIoU": result["open_hbird_hungarian_mIoU"]}
    masks = root / "VOCdevkit" / "VOC2012" / "SegmentationClass"
    for name, row in rows.items():
        folder = tmp / ("pred_cross" if name.startswith("fp32 bank") else f"pred_{name}")
        if name != FP32:
            every, labelled = agreement(folder, tmp / "pred_fp32", val_ids, masks)
            row.update(pixel_agreement=round(every, 5), pixel_agreement_labelled=round(labelled, 5),
                       mIoU_change_points=round(100 * (row["mIoU"] - rows[FP32]["mIoU"]), 3),
                       hungarian_mIoU_change_points=round(100 * (row["hungarian_mIoU"] - rows[FP32]["hungarian_mIoU"]), 3))
            print(f"{name}: pixel agreement with fp32 {100 * every:.2f} % ({100 * labelled:.2f} % of labelled pixels), "
                  f"mIoU {row['mIoU_change_points']:+.2f} points, Hungarian {row['hungarian_mIoU_change_points']:+.2f}",
                  flush=True)
    return rows


def cosines(a: torch.Tensor, b: torch.Tensor) -> dict:
    """Per-row cosine of ``(..., D)`` tensors ``a`` against reference ``b``: min and mean, and max |a − b|."""
    cos = F.cosine_similarity(a.flatten(0, -2).double(), b.flatten(0, -2).double(), dim=-1)
    return {"max_abs_diff": round(float((a - b).abs().max()), 5), "min_cosine": round(float(cos.min()), 5),
            "mean_cosine": round(float(cos.mean()), 6)}


def numerics(args, root: Path, weights: str, precisions: list[str]) -> dict:
    """Tokens, FUNGI features and FUNGI per-patch gradients of each precision against fp32's."""
    from fungi_dense.features import FungiConfig, FungiFeatures
    from fungi_dense.support import build_support_memory
    from hummingbird.datasets.registry import load_dataset
    from hummingbird.datasets.transforms import EvalResize
    from hummingbird.models.backbones import load_backbone

    val = load_dataset("voc", root, "val", EvalResize(args.input_size)).first(args.numerics_images)
    images = torch.stack([val[i]["image"] for i in range(len(val))])
    ids = [val[i]["id"] for i in range(len(val))]
    encoder = load_backbone(args.backbone, weights=weights)
    train = load_dataset("voc", root, "train", EvalResize(args.input_size)).first(args.support_images)
    support = build_support_memory(encoder, train, args.input_size, seed=0)
    fungi = FungiFeatures(encoder, support, FungiConfig())
    out, reference = {}, {}
    for precision in precisions:
        encoder.precision = precision
        with torch.no_grad():
            tokens = torch.cat([encoder(images[i:i + 4]) for i in range(0, len(images), 4)])
        feats, grads = [], []
        for i in range(0, len(images), 2):
            feats.append(fungi(images[i:i + 2], ids[i:i + 2]))
            _, inputs, (g,) = fungi.gradients(images[i:i + 2], ids[i:i + 2])
            grads.append(g)
        current = {"tokens": tokens, "fungi": torch.cat(feats), "gradients": torch.cat(grads)}
        if precision == FP32:
            reference = current
            continue
        out[precision] = {name: cosines(value, reference[name]) for name, value in current.items()}
        print(f"{precision} vs fp32 on {len(images)} images: " + "; ".join(
            f"{name} max |diff| {v['max_abs_diff']:.3g}, min cos {v['min_cosine']:.4f}, mean cos {v['mean_cosine']:.5f}"
            for name, v in out[precision].items()), flush=True)
    encoder.precision = FP32
    return out


def compile_cost(args, weights: str, precisions: list[str]) -> dict:
    """Eager against ``torch.compile``d backbone per precision on one batch of --batch-size generated
    images: first-call (compile) seconds, steady seconds per image, max |Δ| of the tokens."""
    from hummingbird.models.backbones import load_backbone

    encoder = load_backbone(args.backbone, weights=weights)
    images = torch.rand(args.batch_size, 3, args.input_size, args.input_size, generator=torch.Generator().manual_seed(0))
    out = {}
    for precision in precisions:
        encoder.precision, encoder.compiled_tokens = precision, None
        encoder(images[:1])  # warm-up
        with timed() as clock:
            eager = encoder(images)
        eager_s = clock.seconds
        encoder.compiled()
        with timed() as clock:
            encoder(images)
        first = clock.seconds
        with timed() as clock:
            compiled = encoder(images)
        steady = clock.seconds
        out[precision] = {"eager_s_per_image": round(eager_s / len(images), 4), "compile_first_call_s": round(first, 1),
                          "compiled_s_per_image": round(steady / len(images), 4),
                          "speedup": round(eager_s / steady, 3), "max_abs_diff": float((compiled - eager).abs().max())}
        print(f"{precision}: eager {eager_s / len(images):.3f} s/image, torch.compile first call {first:.1f} s, then "
              f"{steady / len(images):.3f} s/image ({eager_s / steady:.2f}x)", flush=True)
        torch._dynamo.reset()
    encoder.compiled_tokens = None
    return out


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--backbone", default="dinov2_vits14")
    p.add_argument("--data-root", default=str(harness.SHARED / "voc"), help="Pascal VOC root")
    p.add_argument("--input-size", type=int, default=448)
    p.add_argument("--train-images", type=int, default=100)
    p.add_argument("--val-images", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2, help="timed whole runs per command and precision")
    p.add_argument("--precisions", nargs="+", default=None,
                   help="default: fp32, bf16, and fp16 where this CPU multiplies it natively")
    p.add_argument("--numerics-images", type=int, default=8, help="val images of the in-process comparison")
    p.add_argument("--support-images", type=int, default=8, help="train images of the FUNGI support memory")
    p.add_argument("--skip-cli", action="store_true", help="no command-line runs")
    p.add_argument("--skip-numerics", action="store_true", help="no in-process numerics")
    p.add_argument("--features", choices=("tokens", "fungi"), default="tokens", help="features of the CLI runs")
    p.add_argument("--compile", action="store_true", help="also time torch.compile against eager per precision")
    harness.add_out_arg(p, "runs/bench_precision.json")
    args = p.parse_args(argv)
    root, weights = Path(args.data_root), harness.shared_weights(args.backbone)
    if weights is None:
        raise SystemExit(f"no weights for {args.backbone} in {harness.SHARED / 'weights'}")
    precisions = args.precisions or [FP32, "bf16"] + (["fp16"] if cpu_has_native_fp16() else [])
    report = {"processor": processor(), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "features": args.features,
              "auto_resolves_to": resolve_precision("auto", "cpu"), "command": " ".join(sys.argv),
              "backbone": args.backbone, "input_size": args.input_size, "train_images": args.train_images,
              "val_images": args.val_images}
    print("processor: " + ", ".join(f"{k} {v}" for k, v in report["processor"].items())
          + f"; auto → {report['auto_resolves_to']}", flush=True)
    if not args.skip_numerics:
        report["numerics"] = numerics(args, root, weights, precisions)
    if args.compile:
        report["compile"] = compile_cost(args, weights, precisions)
    if not args.skip_cli:
        with tempfile.TemporaryDirectory() as tmp:
            report["cli"] = cli_runs(args, root, weights, precisions, Path(tmp))
    harness.write_results(args.out, report, args)
    return 0

if __name__ == "__main__":
    sys.exit(main())
