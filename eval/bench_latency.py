#!/usr/bin/env python
"""One-image latency: a cold ``hummingbird segment``, the warm Python API, and the fixed costs of
``evaluate`` and ``build-memory``, all in one run (ratios are what compare across machines).

    python eval/bench_latency.py --data-root ../shared/voc --backbone dinov2_vits14 \\
        --weights ../shared/weights/dinov2_vits14_imgfocus.pth --train-images 100 --input-size 448 \\
        --out runs/bench_latency.json

Measured, each in fresh processes unless said otherwise:

* ``python -c "import torch, timm"`` — the floor every command pays (median of --repeats);
* cold CLI ``segment`` of one image with a bank of --train-images VOC train images (≥ 100k patches at
  448 px): the wall time of ``python -m hummingbird segment`` (median of --repeats), and the same steps
  with a clock between them in one fresh process (imports, weights, bank + index load, forward, decode,
  write);
* warm ``Segmenter.segment`` per image (--queries val images, after one warm-up) against the backbone
  forward alone on the same inputs;
* fixed costs: ``build-memory``'s wall time minus its encoding loop (``build_seconds`` in the bank) and
  ``evaluate``'s (of --eval-images val images with the saved bank) minus its loop (``seconds``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness
from harness import hummingbird, median_run
from harness import timed_process as run  # wall seconds and result of a fresh process


def stages(bank: str, image: str, out_dir: str) -> dict:
    """``segment``'s steps in this (fresh) process with a clock between them: what cmd_segment does."""
    clock = [("start", time.perf_counter())]

    def mark(name: str) -> None:
        clock.append((name, time.perf_counter()))

    import numpy as np  # noqa: F401
    import timm  # noqa: F401
    import torch  # noqa: F401

    from hummingbird.cli.main import main as cli  # noqa: F401
    from hummingbird.files.atomic import write_json
    from hummingbird.memory.shards import open_bank
    from hummingbird.memory.tiling import input_shape, resize_image
    from hummingbird.segmenter import Segmenter
    from hummingbird.settings import SearchOptions, Settings, resolve_pipeline
    from hummingbird.visual import render  # noqa: F401
    mark("imports")
    memory = open_bank(bank)
    mark("bank read")
    pipeline = resolve_pipeline(Settings(progress=False), memory.metadata, bank)
    memory.check_compatible(pipeline.metadata(), source=bank)
    mark("weights")
    segmenter = Segmenter(memory, pipeline, SearchOptions(), bank_path=bank)
    decoder = segmenter.decoder()
    mark("index load")
    picture = segmenter.read_image(image)
    pixels = resize_image(picture, input_shape(picture.height, picture.width, pipeline.size, pipeline.patch_size,
                                               "aspect"))
    with torch.inference_mode():
        feats = pipeline.features(pixels[None].to(pipeline.device)).cpu()
    mark("forward")
    labels = decoder.upsample(decoder.patch_distributions(feats), (picture.height, picture.width))[0].numpy()
    mark("decode")
    render.save_label_png(labels.astype("uint8"), segmenter.palette, Path(out_dir) / "labels.png")
    write_json(Path(out_dir) / "summary.json", {"bank": bank, "labels": "labels.png"})
    mark("write")
    return {name: round(t - clock[i][1], 3) for i, (name, t) in enumerate(clock[1:])}


def warm_api(bank: str, images: list[Path], warmup: int = 1) -> dict:
    """Per-image seconds of warm ``Segmenter.segment`` and of the backbone forward alone (same inputs)."""
    import torch

    from hummingbird.memory.tiling import input_shape, resize_image
    from hummingbird.segmenter import Segmenter

    segmenter = Segmenter.load(bank, progress=False)
    pictures = [segmenter.read_image(p) for p in images]
    pipeline = segmenter.pipeline
    for picture in pictures[:warmup]:
        segmenter.segment(picture)
    api, forward = [], []
    for picture in pictures:
        started = time.perf_counter()
        segmenter.segment(picture)
        api.append(time.perf_counter() - started)
        shape = input_shape(picture.height, picture.width, pipeline.size, pipeline.patch_size, "aspect")
        started = time.perf_counter()
        pixels = resize_image(picture, shape)
        with torch.inference_mode():
            pipeline.encoder(pixels[None].to(pipeline.device))
        forward.append(time.perf_counter() - started)
    return {"segment_s": round(statistics.median(api), 3), "backbone_forward_s": round(statistics.median(forward), 3),
            "images": len(pictures), "index": type(segmenter.decoder().index).__name__}


def main() -> int:
    p = harness.parser(__doc__)
    p.add_argument("--data-root", default=str(harness.SHARED / "voc"), help="Pascal VOC root")
    harness.add_backbone_args(p, weights=str(harness.SHARED_WEIGHTS), weights_help="weights file")
    p.add_argument("--train-images", type=int, default=100, help="VOC train images in the bank")
    p.add_argument("--eval-images", type=int, default=50, help="VOC val images evaluate runs on")
    p.add_argument("--queries", type=int, default=8, help="VOC val images of the warm API measure")
    p.add_argument("--input-size", type=int, default=448, help="bank input size")
    p.add_argument("--repeats", type=int, default=3, help="fresh-process runs per cold measure (median)")
    p.add_argument("--work-dir", default=None, help="keep the bank here (default: a temporary folder)")
    harness.add_out_arg(p, None)
    p.add_argument("--stages", nargs=3, metavar=("BANK", "IMAGE", "OUT_DIR"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.stages:  # the child process of the stage split
        print(json.dumps(stages(*args.stages)))
        import gc

        gc.freeze()  # and exits as the hummingbird program does (hummingbird.cli.main.entry_point)
        return 0

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_latency_"))
    work.mkdir(parents=True, exist_ok=True)
    bank, results, common = work / "bank.safetensors", work / "results.json", ["--num-workers", "0", "--no-progress"]
    build, evaluate, _ = harness.voc_commands(
        args.data_root, work, args.train_images, args.eval_images, bank, results, common,
        build=["--backbone", args.backbone, "--weights", args.weights, "--input-size", str(args.input_size)])
    val_ids = harness.voc_ids(args.data_root, "val")
    voc = Path(args.data_root) / "VOCdevkit" / "VOC2012" / "JPEGImages"
    if not voc.is_dir():
        voc = next(Path(args.data_root).rglob("JPEGImages"))
    query = voc / f"{val_ids[0]}.jpg"

    floor, floor_runs = median_run([sys.executable, "-c", "import torch, timm"], args.repeats)
    print(f"python -c 'import torch, timm': {floor:.2f} s (median of {floor_runs})")

    build_s, done = run(hummingbird(*build))
    from hummingbird.memory.bank import MemoryBank

    meta = MemoryBank.load(bank).metadata
    build_fixed = build_s - meta["build_seconds"]
    print(f"build-memory: {build_s:.1f} s for {meta['num_patches']:,} patches; fixed cost {build_fixed:.2f} s "
          f"(index: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else '-'})")

    cold, cold_runs = median_run([*hummingbird("segment"), "--bank", str(bank), "--images", str(query), "--out-dir",
                                  str(work / "seg"), *common], args.repeats)
    split = []
    for _ in range(args.repeats):
        wall, done = run([sys.executable, __file__, "--stages", str(bank), str(query), str(work / "stages")])
        steps = json.loads(done.stdout.strip().splitlines()[-1])
        split.append(dict(steps, **{"interpreter start and exit": wall - sum(steps.values())}))
    split = {k: round(statistics.median(s[k] for s in split), 3) for k in split[0]}
    print(f"cold CLI segment: {cold:.2f} s (median of {[round(t, 2) for t in cold_runs]}) = "
          f"{cold / floor:.2f} x import torch, timm; steps: {split}")

    warm = warm_api(str(bank), [voc / f"{i}.jpg" for i in val_ids[:args.queries]])
    print(f"warm Segmenter.segment: {warm['segment_s']:.3f} s per image, backbone forward alone "
          f"{warm['backbone_forward_s']:.3f} s: {warm['segment_s'] / warm['backbone_forward_s']:.2f} x")

    eval_s, done = run(hummingbird(*evaluate))
    eval_fixed = eval_s - json.loads(results.read_text())["seconds"]
    retrained = "training the" in done.stderr
    print(f"evaluate of {args.eval_images} images: {eval_s:.1f} s; fixed cost {eval_fixed:.2f} s vs build-memory's "
          f"{build_fixed:.2f} s ({eval_fixed - build_fixed:+.2f} s); index {'RE-TRAINED' if retrained else 'read'}")
    payload = {"cpus": os.cpu_count(), "torch_threads": __import__("torch").get_num_threads(),
               "bank_patches": meta["num_patches"], "input_size": args.input_size, "query": query.name,
               "import_torch_timm_s": round(floor, 3), "cold_cli_segment_s": round(cold, 3),
               "cold_ratio": round(cold / floor, 3), "cold_steps_s": split, "warm_api": warm,
               "warm_ratio": round(warm["segment_s"] / warm["backbone_forward_s"], 3),
               "build_memory_s": round(build_s, 3), "build_memory_fixed_s": round(build_fixed, 3),
               "evaluate_s": round(eval_s, 3), "evaluate_images": args.eval_images,
               "evaluate_fixed_s": round(eval_fixed, 3), "evaluate_index_retrained": retrained}
    harness.write_results(args.out, payload, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
