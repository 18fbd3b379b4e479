#!/usr/bin/env python
"""What an evaluation costs on this machine, stage by stage, against the backbone alone.

First, as a user sees it (real VOC only; ``--no-cli-runs`` skips it): ``hummingbird build-memory`` of
the first --train-images VOC train ids, then ``hummingbird evaluate`` of the first --val-images val ids,
each a fresh process (start-up, model and bank loading included), --repeats times interleaved, in
--precision: seconds per image of each whole run, their spread, and evaluate / build per image. The
report names the CPU's model and its bf16 flags.

Then, in process (CPU, a few minutes on 2 cores): a memory bank from --train-images real Pascal VOC train
images (``../shared/voc`` when present, else generated block scenes) at --input-size, every labelled
patch kept (≈ 1,024 patches per image at 448 px with ViT-S/14, so ≥ 100k patches), the real DINOv2
ViT-S/14 weights named by ``../shared/weights/weights.json`` when present (else a seeded random init:
speed does not depend on weights). Then on --val-images validation images it prints and writes (JSON):

  * seconds per image of the backbone alone (images already in memory, same process and precision);
  * seconds per image of the whole evaluation loop, the marginal cost of one more image (data
    loading, backbone, search, label gather, soft labels, upsample, argmax, metric update), its
    per-stage split, and evaluation / backbone;
  * the decoder alone (on the same query features) with the default search (--index, default
    ``auto``) and with exact search (faiss ``Flat``), per stage, and the pixel agreement of the two;
  * the index build time and peak resident memory.

    python eval/bench_hbird.py --out runs/bench_hbird.json

--throughput adds the older throughput figures of ``eval/bench_throughput.py`` (token extraction, memory
building on generated images, exact and approximate faiss indexes on a synthetic bank). --gpu-run is the
full-VOC-val-sized run on a GPU with generated images (no dataset needed): 1,449 images at 504 px,
ViT-S/14, memory 1024·10², wall time and per-stage split:

    python eval/bench_hbird.py --gpu-run --out runs/bench_hbird_gpu.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import harness
import torch
from harness import timed

from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.registry import load_dataset
from hummingbird.datasets.synthetic import write_block_dataset
from hummingbird.datasets.transforms import EvalResize, MemoryAugment
from hummingbird.memory.bank import MemoryBank
from hummingbird.memory.search import auto_spec
from hummingbird.models.backbones import encoder_from_weights_file
from hummingbird.models.features import TokenFeatures
from hummingbird.models.precision import PRECISIONS
from hummingbird.pipeline import build_memory_bank, confusion_of, make_decoder
from hummingbird.runtime.profiling import NO_TIMER, STAGES, StageTimer

EXACT_REFERENCE = "Flat"  # faiss exact search: the reference the default search is compared with


# ----------------------------------------------------------------------------- evaluation cost

def datasets(args, tmp: Path):
    """(train, val, description): real VOC when present (unless --synthetic), else generated scenes."""
    root = None if args.synthetic else (Path(args.data_root) if args.data_root else harness.shared_voc())
    if root is not None:
        train = load_dataset("voc", root, "train", MemoryAugment(args.input_size), seed=args.seed)
        val = load_dataset("voc", root, "val", EvalResize(args.input_size))
        what = f"Pascal VOC 2012 at {root}"
    else:
        root = write_block_dataset(tmp / "scenes", n_train=args.train_images, n_val=args.val_images,
                                   size=args.input_size, block=args.input_size // 8, num_classes=21)
        train = load_dataset("folder", root, "train", MemoryAugment(args.input_size), seed=args.seed)
        val = load_dataset("folder", root, "val", EvalResize(args.input_size))
        what = "generated 21-class block scenes"
    return train.first(args.train_images), val.first(args.val_images), what


def batches_of(dataset, opts: LoaderOptions) -> list[dict]:
    """Every batch of ``dataset``, loaded into memory."""
    return list(torch.utils.data.DataLoader(dataset, batch_size=opts.batch_size, num_workers=opts.num_workers))


def backbone_alone(features, batches: list[dict], device: str) -> tuple[float, list[torch.Tensor]]:
    """Seconds of the backbone on in-memory batches; returns the query features too (kept on the device)."""
    features(batches[0]["image"][:1].to(device))  # warm-up
    feats, seconds = [], 0.0
    for batch in batches:
        images = batch["image"].to(device)
        with timed(device) as clock:
            feats.append(features(images))
        seconds += clock.seconds
    return seconds, feats


def decoder_alone(decoder, feats: list[torch.Tensor], batches: list[dict], device: str) -> tuple[dict, torch.Tensor]:
    """Per-stage seconds of ``decoder`` on cached query features; returns its label maps (on the CPU)."""
    timer = StageTimer(device)
    decoder.timer = timer
    maps = [decoder.predict(f, tuple(batch["mask"].shape[-2:])).cpu() for f, batch in zip(feats, batches)]
    harness.synchronize(device)
    decoder.timer = NO_TIMER
    return dict(timer.seconds), torch.cat(maps)


def stage_rank(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else len(STAGES)


def describe(index) -> str:
    """The search a decoder uses, with its parameters."""
    text = f"{index.spec}"
    if hasattr(index, "nlist"):
        text += f" (nlist {index.nlist}, nprobe {index.nprobe})"
    if getattr(index, "score_dtype", None) is not None:
        text += f" ({str(index.score_dtype).split('.')[-1]} scoring, exact re-ranking)"
    return text


def stage_lines(seconds: dict, images: int, backbone: float | None = None) -> list[str]:
    total = sum(seconds.values())
    lines = []
    for stage, s in sorted(seconds.items(), key=lambda item: stage_rank(item[0])):
        share = f"{100 * s / total:5.1f} %"
        vs = f", {s / backbone:5.3f} x backbone" if backbone else ""
        lines.append(f"    {stage:<14} {s / images:8.4f} s/image  ({share}{vs})")
    return lines


def bench_evaluation(args, weights: str) -> dict:
    device = args.device
    features = TokenFeatures(encoder_from_weights_file(args.backbone, weights, precision=args.precision)).to(device)
    opts = LoaderOptions(batch_size=args.batch_size, num_workers=args.num_workers, device=device, progress=False)
    out = {"backbone": args.backbone, "weights": weights, "input_size": args.input_size, "index": args.index,
           "k": args.k, "precision": features.encoder.active_precision}
    with tempfile.TemporaryDirectory() as tmp:
        train, val, out["data"] = datasets(args, Path(tmp))
        print(f"{args.backbone} ({Path(weights).name if weights != 'random' else 'random weights'}) at "
              f"{args.input_size} px on {device} in {out['precision']}; {out['data']}: {len(train)} train / "
              f"{len(val)} val images")
        with timed(device) as build:
            bank = build_memory_bank(features, train, args.input_size, memory_size=args.memory_size, seed=args.seed,
                                     opts=opts)
        out["memory"] = {"images": len(train), "patches": len(bank), "seconds": round(build.seconds, 2),
                         "s_per_image": round(build.seconds / len(train), 4)}
        print(f"memory: {len(bank):,} patches from {len(train)} images in {build.seconds:.1f} s "
              f"({build.seconds / len(train):.3f} s/image)")
        with timed(device) as index:
            decoder = make_decoder(bank, k=args.k, index_spec=args.index, nprobe=args.nprobe, seed=args.seed,
                                   device=device)
        out["index_build_seconds"], out["search"] = round(index.seconds, 2), describe(decoder.index)
        print(f"index {args.index} → {out['search']}: built in {out['index_build_seconds']:.1f} s")

        n, timer = len(val), StageTimer(device)
        with timed(device) as whole:  # the whole evaluation, profiled stage by stage
            confusion_of(features, decoder, val, opts, timer=timer)
        if args.unprofiled:  # the same run without synchronising stages: the wall time a user sees
            with timed(device) as plain:
                confusion_of(features, decoder, val, opts)
            out["evaluation_unprofiled_s_per_image"] = round(plain.seconds / n, 4)

        # the backbone alone on the same images, already in memory
        batches = batches_of(val.first(args.agreement_images or n), opts)
        agree_n = sum(len(b["image"]) for b in batches)
        if agree_n == n:
            backbone, feats = backbone_alone(features, batches, device)
        else:  # time the backbone on every image, keep features of the first --agreement-images
            backbone, _ = backbone_alone(features, batches_of(val, opts), device)
            _, feats = backbone_alone(features, batches, device)
        wall = whole.seconds
        out["backbone_s_per_image"] = round(backbone / n, 4)
        out["evaluation_s_per_image"] = round(wall / n, 4)
        out["ratio"] = round(wall / backbone, 3)
        out["evaluation_stages_s_per_image"] = {k: round(v, 5) for k, v in timer.per_image(n).items()}
        out["decoder_after_backbone_s_per_image"] = round(
            sum(v for k, v in timer.seconds.items() if k not in ("backbone", "data loading")) / n, 4)
        print(f"backbone alone:   {backbone / n:.3f} s/image")
        print(f"whole evaluation: {wall / n:.3f} s/image ({n} images, search {args.index}); "
              f"evaluation / backbone = {wall / backbone:.2f}")
        if "evaluation_unprofiled_s_per_image" in out:
            print(f"whole evaluation, stages not synchronised: {out['evaluation_unprofiled_s_per_image']:.4f} s/image")
        print("  per stage:")
        print("\n".join(stage_lines(timer.seconds, n, backbone=timer.seconds.get("backbone"))))
        out.update(against_exact(decoder, bank, feats, batches, args, backbone * agree_n / n))
        if args.sweep_search:
            out["sweep"] = sweep_search(bank, feats, batches, args, backbone / n)
    return out


def against_exact(decoder, bank, feats: list[torch.Tensor], batches: list[dict], args, backbone: float) -> dict:
    """The decoder alone on the same features, with the search under test and with exact search (faiss
    ``Flat``): per-stage seconds per image and the pixel agreement of the two (``backbone``: seconds of
    the backbone on these images)."""
    reference = make_decoder(bank, k=args.k, index_spec=EXACT_REFERENCE, seed=args.seed)
    n = sum(len(b["image"]) for b in batches)
    out, maps = {"decoder": {}}, {}
    for name, dec in ((args.index, decoder), (f"{EXACT_REFERENCE} (exact reference)", reference)):
        stages, maps[name] = decoder_alone(dec, feats, batches, args.device)
        out["decoder"][name] = {k: round(v / n, 5) for k, v in sorted(stages.items(), key=lambda i: stage_rank(i[0]))}
        print(f"decoder alone, {name}: {sum(stages.values()) / n:.4f} s/image "
              f"({sum(stages.values()) / backbone:.3f} x backbone)")
        print("\n".join(stage_lines(stages, n)))
    default_maps, exact_maps = maps.values()
    labelled = torch.cat([b["mask"] for b in batches]) != 255
    agreement = float((default_maps == exact_maps).float().mean())
    out["pixel_agreement_with_exact"] = round(agreement, 6)
    out["pixel_agreement_labelled_pixels"] = round(float((default_maps == exact_maps)[labelled].float().mean()), 6)
    print(f"pixel agreement of {args.index} with exact search: {100 * agreement:.3f} % "
          f"({n} images, {default_maps.numel():,} pixels)")
    return out


def sweep_search(bank: MemoryBank, feats: list[torch.Tensor], batches: list[dict], args, backbone: float) -> list[dict]:
    """Exact against clustered search on random subsets of the memory: index build seconds, decoder
    seconds per image, pixel agreement, to place the size from which ``auto`` clusters."""
    device = args.device
    n = sum(len(f) for f in feats)
    rows = []
    print(f"search sweep ({n} images; backbone {backbone:.3f} s/image):")
    g = torch.Generator().manual_seed(args.seed)
    for size in [s for s in args.sweep_sizes if s <= len(bank)]:
        keep = torch.randperm(len(bank), generator=g)[:size].sort().values
        part = MemoryBank(bank.features[keep], bank.labels[keep], bank.sources[keep], bank.views, bank.metadata)
        row, maps = {"memory": size}, {}
        for name, spec in (("exact", auto_spec(0, device)), ("clustered", "clustered")):
            with timed(device) as build:
                dec = make_decoder(part, k=args.k, index_spec=spec, seed=args.seed, device=device)
            stages, maps[name] = decoder_alone(dec, feats, batches, device)
            row[name] = {"search": describe(dec.index), "build_seconds": round(build.seconds, 2),
                         "search_s_per_image": round(stages["search"] / n, 4),
                         "decoder_s_per_image": round(sum(stages.values()) / n, 4)}
            if name == "clustered":
                row[name].update(nlist=dec.index.nlist, nprobe=dec.index.nprobe)
        row["pixel_agreement"] = round(float((maps["exact"] == maps["clustered"]).float().mean()), 6)
        rows.append(row)
        e, c = row["exact"], row["clustered"]
        print(f"  memory {size:>7,}: exact ({e['search']}) {e['search_s_per_image']:.4f} s/image "
              f"({e['search_s_per_image'] / backbone:.3f} x backbone); clustered (nlist {c['nlist']}, nprobe "
              f"{c['nprobe']}) {c['search_s_per_image']:.4f} s/image + {c['build_seconds']:.1f} s build; "
              f"agreement {100 * row['pixel_agreement']:.3f} %")
    return rows


# ----------------------------------------------------------------------------- whole command-line runs

def bench_cli_runs(args, root: Path, weights: str) -> dict:
    """``hummingbird build-memory`` then ``hummingbird evaluate`` as a user runs them (fresh processes,
    start-up and model load included), --repeats times each, on the first --train-images / --val-images
    ids of real VOC, in --precision: seconds per image of each whole run, their spread, and
    evaluate / build per image."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        common = ["--input-size", str(args.input_size), "--batch-size", str(args.batch_size), "--precision",
                  args.precision, "--device", args.device, "--no-progress"]
        build, evaluate, val_ids = harness.voc_commands(root, tmp, args.train_images, args.val_images,
                                                        tmp / "bank.safetensors", tmp / "result.json", common,
                                                        build=["--backbone", args.backbone, "--weights", weights])
        seconds = harness.repeated_runs({"build": build, "evaluate": evaluate}, args.repeats)
    out = {"build": harness.spread(seconds["build"], args.train_images),
           "evaluate": harness.spread(seconds["evaluate"], len(val_ids)),
           "commands": [" ".join(["hummingbird", *build]), " ".join(["hummingbird", *evaluate])]}
    out["evaluate_over_build"] = round(out["evaluate"]["s_per_image"] / out["build"]["s_per_image"], 3)
    ratios = [(e / len(val_ids)) / (b / args.train_images) for b, e in zip(seconds["build"], seconds["evaluate"])]
    out["evaluate_over_build_runs"] = [round(r, 3) for r in ratios]
    print(f"whole CLI runs ({args.repeats}x, {args.precision}): build-memory {out['build']['s_per_image']:.3f} s/image "
          f"(spread {100 * out['build']['spread']:.0f} %), evaluate {out['evaluate']['s_per_image']:.3f} s/image "
          f"(spread {100 * out['evaluate']['spread']:.0f} %); evaluate / build = {out['evaluate_over_build']:.2f} "
          f"(runs: {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    return out


# ----------------------------------------------------------------------------- command line

GPU_RUN = {"synthetic": True, "cli_runs": False, "train_images": 100, "val_images": 1449, "input_size": 504,
           "memory_size": 102_400, "device": "cuda", "batch_size": 16, "num_workers": 8, "agreement_images": 64,
           "unprofiled": True}


def build_parser() -> argparse.ArgumentParser:
    from bench_throughput import add_throughput_args

    p = harness.parser(__doc__)
    g = p.add_argument_group("evaluation cost")
    harness.add_backbone_args(g, weights="auto", weights_help="checkpoint path, 'random', or 'auto': ../shared/weights "
                                                              "(weights.json) else random")
    g.add_argument("--data-root", default=None, help="Pascal VOC root (default: ../shared/voc when present)")
    g.add_argument("--synthetic", action="store_true", help="generated block scenes instead of VOC")
    g.add_argument("--input-size", type=int, default=448)
    g.add_argument("--train-images", type=int, default=100)
    g.add_argument("--memory-size", type=int, default=None, help="default: every labelled patch")
    g.add_argument("--val-images", type=int, default=50)
    g.add_argument("--cli-runs", action=argparse.BooleanOptionalAction, default=True,
                   help="time whole hummingbird build-memory / evaluate runs (real VOC only)")
    g.add_argument("--repeats", type=int, default=2, help="whole CLI runs per command")
    g.add_argument("--agreement-images", type=int, default=None,
                   help="images compared with exact search (default: all --val-images)")
    g.add_argument("--index", default="auto", help="search under test: auto, exact, clustered, or a faiss string")
    g.add_argument("--k", type=int, default=30)
    g.add_argument("--nprobe", type=int, default=None, help="partitions a clustered search visits (default: its own)")
    g.add_argument("--unprofiled", action="store_true", help="also time the evaluation without stage timers")
    g.add_argument("--sweep-search", action="store_true",
                   help="also compare exact and clustered search on subsets of the memory (--sweep-sizes)")
    g.add_argument("--sweep-sizes", type=int, nargs="+", default=[5_000, 10_000, 20_000, 40_000, 80_000])
    g.add_argument("--gpu-run", action="store_true",
                   help="preset: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in GPU_RUN.items()))
    g = p.add_argument_group("throughput (--throughput)")
    g.add_argument("--throughput", action="store_true",
                   help="also measure token extraction, memory building and faiss indexes (older figures)")
    add_throughput_args(g)
    g = p.add_argument_group("runtime")
    harness.add_runtime_args(g, batch_size=8, num_workers=1, seed=False)
    g.add_argument("--precision", choices=PRECISIONS, default="auto", help="backbone precision (as the CLI's)")
    g.add_argument("--threads", type=int, default=None, help="torch/faiss threads (default: all cores)")
    g.add_argument("--seed", type=int, default=0)
    harness.add_out_arg(g, "runs/bench_hbird.json")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.gpu_run:
        parser.set_defaults(**GPU_RUN)
        args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        import faiss

        faiss.omp_set_num_threads(args.threads)
    env = harness.environment(args.device)
    report = {"machine": {k: v for k, v in env.items() if k not in ("date", "command", "cpus")},
              "command": " ".join(sys.argv)}
    print("machine: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items()))
    weights = args.weights if args.weights != "auto" else harness.shared_weights(args.backbone) or "random"
    root = Path(args.data_root) if args.data_root else harness.shared_voc()
    if args.cli_runs and not args.synthetic and root:
        report["cli_runs"] = bench_cli_runs(args, root, weights)
    report["evaluation"] = bench_evaluation(args, weights)
    if args.throughput:
        from bench_throughput import bench_throughput

        report["throughput"] = bench_throughput(args)
    report["peak_rss_gib"] = round(harness.peak_rss_gib(), 3)
    if torch.device(args.device).type == "cuda":
        report["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    print(f"peak RSS: {report['peak_rss_gib']:.2f} GiB")
    harness.write_results(args.out, report, args, env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
