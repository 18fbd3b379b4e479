"""In-context depth on real NYUv2 pairs: the decoder against the constant (memory-mean depth) baseline, over
image-disjoint splits, target encodings and input sizes. Measures; claims nothing it does not see.

Splits: the pairs (sorted ids; consecutive ids often share a room) are cut into ``--folds`` contiguous blocks;
each block is queried once against a memory of all the other blocks (with 30 pairs: 3 × (20 memory → 10
queries), no image in both). Every encoding and input size sees the same splits, the toolkit's decoder
defaults (k = 30, τ = 0.02) and the NYUv2 metric convention (BTS Eigen crop, 1e-3 < gt < 10 m, per-image
metrics averaged over images). Nothing is tuned on the queries. ``--leave-one-out`` adds the optimistic
split (each pair against all others: frames of its own room are in the memory), reported separately.

Features are computed once per image and input size (a cache in front of the toolkit's feature source);
memories, decoding and scores are the package's own (:func:`hummingbird.tasks.depth.build_depth_bank`,
:meth:`hummingbird.tasks.depth.DepthEstimator.evaluate`).

    flock /tmp/heavy.lock python eval/depth_nyu.py --data-root ../shared/nyu \\
        --weights ../shared/weights/dinov2_vits14_imgfocus.pth --out runs/depth_nyu.json --table runs/depth_nyu.md
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import itertools

from hummingbird.datasets.depth import open_depth_dataset
from hummingbird.errors import HummingbirdWarning
from hummingbird.evaluation.depth_metrics import LOWER_IS_BETTER, METRIC_NAMES
from hummingbird.files.atomic import write_json, write_text
from hummingbird.memory.depth_targets import DepthEncoding
from hummingbird.settings import SearchOptions, Settings, resolve_pipeline
from hummingbird.tasks.depth import DepthEstimator, build_depth_bank, model_input_shape

ENCODINGS = {"mean": DepthEncoding("mean"), "log-mean": DepthEncoding("log-mean"),
             "bins64-expectation": DepthEncoding("bins", 64, decode="expectation"),
             "bins64-log-expectation": DepthEncoding("bins", 64, decode="log-expectation")}


class CachedFeatures:
    """The toolkit's feature source, computed once per distinct image tensor (exact: same bytes, same features)."""

    def __init__(self, features):
        self.inner, self.cache = features, {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, images: torch.Tensor, image_ids=None) -> torch.Tensor:
        keys = [hashlib.blake2b(x.cpu().numpy().tobytes(), digest_size=16).hexdigest() for x in images]
        missing = [i for i, k in enumerate(keys) if k not in self.cache]
        if missing:
            for i, f in zip(missing, self.inner(images[missing]).cpu()):
                self.cache[keys[i]] = f
        return torch.stack([self.cache[k] for k in keys]).to(images.device)


def folds(ids: list[str], count: int) -> list[tuple[list[str], list[str]]]:
    """``count`` contiguous blocks of ``ids``: (memory = the other blocks, queries = the block)."""
    bounds = np.linspace(0, len(ids), count + 1).round().astype(int)
    return [(ids[:a] + ids[b:], ids[a:b]) for a, b in itertools.pairwise(bounds)]


def run_split(pipeline, dataset, memory_ids, query_ids, encoding, tmp: Path, k: int, temperature: float,
              eigen_crop: str = "bts") -> dict:
    (tmp / "memory.txt").write_text("\n".join(memory_ids) + "\n")
    (tmp / "queries.txt").write_text("\n".join(query_ids) + "\n")
    bank = build_depth_bank(pipeline, dataset.restricted(tmp / "memory.txt"), encoding)
    estimator = DepthEstimator(bank, pipeline, SearchOptions(k=k, temperature=temperature))
    result = estimator.evaluate(dataset.restricted(tmp / "queries.txt"), eigen_crop=eigen_crop)
    return {"metrics": result["metrics"], "baseline_constant": result["baseline_constant"],
            "memory_mean_depth": result["settings"]["memory_mean_depth"], "memory_patches": len(bank),
            "per_image": {i: {"decoder": r["metrics"], "constant": r["baseline_constant"]}
                          for i, r in result["per_image"].items()}}


def summarise(runs: list[dict]) -> dict:
    """Per-image metrics of several splits pooled (each query image once): the mean over images, and how many
    images the decoder beats the constant on, per metric."""
    per_image = {i: r for run in runs for i, r in run["per_image"].items()}
    out = {"num_images": len(per_image)}
    for who in ("decoder", "constant"):
        out[who] = {m: float(np.mean([r[who][m] for r in per_image.values()])) for m in METRIC_NAMES}
    out["decoder_better_images"] = {
        m: sum((r["decoder"][m] < r["constant"][m]) if LOWER_IS_BETTER[m] else (r["decoder"][m] > r["constant"][m])
               for r in per_image.values()) for m in METRIC_NAMES}
    return out


def table(report: dict) -> str:
    head = ("| input (W×H) | method | RMSE (m) ↓ | AbsRel ↓ | log10 ↓ | δ<1.25 ↑ | δ<1.25² ↑ | δ<1.25³ ↑ | "
            "RMSE per fold | images where RMSE < constant |\n|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for split_kind in ("folds", "leave_one_out"):
        rows = []
        for run in report["runs"].values():
            summary = run.get(f"{split_kind}_summary")
            if not summary:
                continue
            shape = run["input_shape_wh"]
            first = next(iter(summary.values()))
            per_fold = split_kind == "folds"
            folds_const = " / ".join(f"{f['baseline_constant']['rmse']:.3f}" for f in next(iter(run["folds"].values())))
            m = first["constant"]
            rows.append(f"| {shape} | constant (memory-mean depth) | {m['rmse']:.3f} | {m['abs_rel']:.3f} | "
                        f"{m['log10']:.3f} | {m['delta1']:.3f} | {m['delta2']:.3f} | {m['delta3']:.3f} | "
                        f"{folds_const if per_fold else '–'} | – |")
            for name, s in summary.items():
                m = s["decoder"]
                folds_rmse = " / ".join(f"{f['metrics']['rmse']:.3f}" for f in run[split_kind][name]) if per_fold else "–"
                rows.append(f"| {shape} | kNN {name} | {m['rmse']:.3f} | {m['abs_rel']:.3f} | {m['log10']:.3f} | "
                            f"{m['delta1']:.3f} | {m['delta2']:.3f} | {m['delta3']:.3f} | {folds_rmse} | "
                            f"{s['decoder_better_images']['rmse']}/{s['num_images']} |")
        if rows:
            title = ("image-disjoint folds (each block of queries against a memory of the other blocks)"
                     if split_kind == "folds" else "leave-one-out (optimistic: the query's room is in the memory)")
            lines.append(f"### {title}\n\n" + head + "\n".join(rows) + "\n")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "nyu"),
                    help="NYU folder (DenseDepth layout; default ../shared/nyu)")
    ap.add_argument("--split", default="test", help="split whose pairs are cut into memory and queries")
    ap.add_argument("--backbone", default="dinov2_vits14")
    ap.add_argument("--weights", default=str(Path(__file__).resolve().parents[2] / "shared" / "weights"
                                             / "dinov2_vits14_imgfocus.pth"))
    ap.add_argument("--input-sizes", default="168,336,504", help="network input short sides (NYU: 224x168, ...)")
    ap.add_argument("--encodings", default=",".join(ENCODINGS), help=f"of {', '.join(ENCODINGS)}")
    ap.add_argument("--folds", type=int, default=3, help="contiguous blocks, each queried once")
    ap.add_argument("--leave-one-out", action="store_true", help="also each pair against all the others")
    ap.add_argument("--eigen-crop", default="bts", choices=("bts", "densedepth", "none"),
                    help="scored region (NYUv2: bts [45:471, 41:601])")
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--temperature", type=float, default=0.02)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="depth_nyu.json")
    ap.add_argument("--table", default=None, help="also write the Markdown tables here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", HummingbirdWarning)  # leave-one-out's overlap note is the point there
    started = time.time()
    dataset = open_depth_dataset("nyu", args.data_root, args.split)
    ids = dataset.ids
    encodings = {name: ENCODINGS[name] for name in args.encodings.split(",")}
    tmp = Path(args.out).with_suffix(".ids")
    tmp.mkdir(parents=True, exist_ok=True)
    report = {"settings": {
        "data_root": args.data_root, "split": args.split, "ids": ids, "folds": args.folds,
        "fold_queries": [q for _, q in folds(ids, args.folds)], "backbone": args.backbone, "weights": args.weights,
        "k": args.k, "temperature": args.temperature, "encodings": {n: e.metadata() for n, e in encodings.items()},
        "metrics": f"Eigen crop {args.eigen_crop}, 1e-3 < gt < 10 m, predictions clipped, per-image mean",
        "python": platform.python_version(), "torch": torch.__version__, "threads": args.threads}, "runs": {}}
    for size in (int(s) for s in args.input_sizes.split(",")):
        t = time.time()
        pipeline = resolve_pipeline(Settings(backbone=args.backbone, weights=args.weights, input_size=size,
                                             device="cpu", progress=False, precision="fp32"))
        pipeline.features = CachedFeatures(pipeline.features)
        run = {"folds": {}, "leave_one_out": {}}
        for name, encoding in encodings.items():
            run["folds"][name] = [run_split(pipeline, dataset, m, q, encoding, tmp, args.k, args.temperature,
                                            args.eigen_crop) for m, q in folds(ids, args.folds)]
            if args.leave_one_out:
                run["leave_one_out"][name] = [run_split(pipeline, dataset, [j for j in ids if j != i], [i], encoding,
                                                        tmp, args.k, args.temperature, args.eigen_crop) for i in ids]
        h, w = model_input_shape(dataset[0], size, pipeline.patch_size)
        run["input_shape_wh"] = f"{w}×{h}"
        run["folds_summary"] = {n: summarise(r) for n, r in run["folds"].items()}
        run["leave_one_out_summary"] = {n: summarise(r) for n, r in run["leave_one_out"].items()}
        run["seconds"] = round(time.time() - t, 1)
        report["runs"][str(size)] = run
        best = {n: round(s["decoder"]["rmse"], 3) for n, s in run["folds_summary"].items()}
        const = next(iter(run["folds_summary"].values()))["constant"]["rmse"]
        print(f"input {w}x{h}: constant RMSE {const:.3f}, decoder {best} ({run['seconds']} s)", flush=True)
    report["seconds"] = round(time.time() - started, 1)
    write_json(args.out, report)
    if args.table:
        write_text(args.table, table(report))
    print(table(report))
    print(f"wrote {args.out}" + (f" and {args.table}" if args.table else "") + f" in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
