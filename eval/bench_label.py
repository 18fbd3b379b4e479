#!/usr/bin/env python
"""``hummingbird label`` speed through its HTTP API: stroke-to-prediction latency and first-pass throughput.

    python eval/bench_label.py --data-root ../shared/voc --backbone dinov2_vits14 \\
        --weights ../shared/weights/dinov2_vits14_imgfocus.pth --input-size 448 --images 200 --annotated 20 \\
        --out runs/bench_label.json

Starts the real server (``python -m hummingbird label``) on a folder of --images real VOC images (trainval,
in list order) and measures, all through HTTP with the token:

* first pass: images whose query features the background pass computed, per second (from ``/api/status``);
* strokes during the first pass: a PUT of an annotation while the pass runs (the page never waits for it);
* after the pass, --annotated images annotated with their real VOC masks (``PUT /api/annotations``), then
  --strokes strokes: a square of a class painted into one annotated image (PUT: the memory's rows of that
  image replaced) followed by ``GET /api/predictions`` of an unannotated "open" image — the page's
  stroke-to-prediction path; p50 / p95 of the pair, and of each half.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import harness


def _call(base: str, token: str, method: str, path: str, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _png(values) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(values).save(out, format="PNG")
    return out.getvalue()


def _percentiles(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    pick = lambda q: ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]  # noqa: E731
    return {"p50_s": round(statistics.median(ordered), 4), "p95_s": round(pick(0.95), 4),
            "mean_s": round(statistics.mean(ordered), 4), "n": len(ordered)}


def main() -> int:
    p = harness.parser(__doc__)
    harness.add_data_args(p, data_root=str(harness.SHARED / "voc"))
    harness.add_backbone_args(p, weights=str(harness.SHARED_WEIGHTS))
    p.add_argument("--input-size", type=int, default=448)
    p.add_argument("--images", type=int, default=200, help="images in the photo folder (first pass)")
    p.add_argument("--annotated", type=int, default=20, help="images annotated with their VOC masks")
    p.add_argument("--strokes", type=int, default=30, help="strokes timed after the first pass")
    p.add_argument("--precision", default="auto")
    p.add_argument("--seed", type=int, default=0)
    harness.add_out_arg(p, None)
    args = p.parse_args()

    import numpy as np
    from PIL import Image

    from hummingbird.datasets.classes import VOC_CLASSES
    from hummingbird.datasets.registry import load_dataset

    voc = load_dataset("voc", args.data_root, "trainval")
    samples = voc.samples[:args.images]
    work = Path(tempfile.mkdtemp(prefix="bench_label_"))
    photos = work / "photos"
    photos.mkdir()
    for s in samples:
        shutil.copyfile(s.image, photos / s.image.name)
    (work / "classes.txt").write_text("\n".join(VOC_CLASSES) + "\n")
    token = "bench"
    command = [sys.executable, "-m", "hummingbird", "label", str(photos), "--classes", str(work / "classes.txt"),
               "--backbone", args.backbone, "--weights", args.weights, "--input-size", str(args.input_size),
               "--precision", args.precision, "--token", token, "--port", "0", "--no-progress"]
    started = time.perf_counter()
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(harness.ROOT)))
    try:
        url = server.stdout.readline().strip()
        ready_s = time.perf_counter() - started
        base = url.split("/?")[0]
        status = lambda: json.loads(_call(base, token, "GET", "/api/status")[1])  # noqa: E731
        masks = {s.id: np.asarray(Image.open(s.mask)).astype(np.uint8) for s in samples[:args.annotated]}
        rng = random.Random(args.seed)

        # a few strokes while the first pass runs: the annotated image's features are computed first if needed
        during = []
        for s in samples[-3:]:
            mask = np.full_like(np.asarray(Image.open(s.mask)), 255, dtype=np.uint8)
            mask[10:60, 10:60] = 0
            t = time.perf_counter()
            code, body = _call(base, token, "PUT", f"/api/annotations/{s.image.name}", _png(mask))
            during.append(time.perf_counter() - t)
            assert code == 200, body
            _call(base, token, "PUT", f"/api/annotations/{s.image.name}?version=1",
                  _png(np.full_like(mask, 255)))  # unannotated again: the memory holds the --annotated only
        running_after_strokes = status()["first_pass"]["running"]
        while status()["first_pass"]["running"]:
            time.sleep(1)
        first = status()["first_pass"]

        for s in samples[:args.annotated]:
            code, body = _call(base, token, "PUT", f"/api/annotations/{s.image.name}", _png(masks[s.id]))
            assert code == 200, body
        memory_rows = status()["memory_rows"]
        open_image = samples[args.annotated].image.name
        _call(base, token, "GET", f"/api/predictions/{open_image}")  # warm-up
        versions = {s.id: 1 for s in samples[:args.annotated]}
        pairs, puts, gets = [], [], []
        for _ in range(args.strokes):
            s = samples[rng.randrange(args.annotated)]
            mask = masks[s.id]
            y, x = rng.randrange(mask.shape[0] - 40), rng.randrange(mask.shape[1] - 40)
            mask[y:y + 40, x:x + 40] = rng.randrange(len(VOC_CLASSES))
            data = _png(mask)
            t0 = time.perf_counter()
            code, body = _call(base, token, "PUT", f"/api/annotations/{s.image.name}?version={versions[s.id]}", data)
            t1 = time.perf_counter()
            assert code == 200, body
            versions[s.id] = json.loads(body)["version"]
            code, body = _call(base, token, "GET", f"/api/predictions/{open_image}")
            t2 = time.perf_counter()
            assert code == 200, body
            pairs.append(t2 - t0)
            puts.append(t1 - t0)
            gets.append(t2 - t1)
    finally:
        server.terminate()
        server.wait(60)
        shutil.rmtree(work, ignore_errors=True)

    encoded = first.get("encoded") or first["done"]
    results = {
        "images": len(samples), "annotated": args.annotated, "input_size": args.input_size,
        "memory_rows": memory_rows, "server_ready_s": round(ready_s, 2),
        "first_pass": {"images": encoded, "seconds": first["seconds"],
                       "images_per_s": round(encoded / first["seconds"], 3) if first["seconds"] else None},
        "stroke_during_first_pass": {**_percentiles(during), "first_pass_still_running": running_after_strokes},
        "stroke_to_prediction": _percentiles(pairs), "put_annotation": _percentiles(puts),
        "get_prediction": _percentiles(gets),
    }
    print(json.dumps(results, indent=1))
    print(harness.markdown_table(
        ["measure", "p50 (s)", "p95 (s)"],
        [["stroke → prediction (PUT + GET)", results["stroke_to_prediction"]["p50_s"],
          results["stroke_to_prediction"]["p95_s"]],
         ["PUT /api/annotations (memory rows replaced)", results["put_annotation"]["p50_s"],
          results["put_annotation"]["p95_s"]],
         ["GET /api/predictions", results["get_prediction"]["p50_s"], results["get_prediction"]["p95_s"]]]))
    print(f"first pass: {results['first_pass']['images_per_s']} images/s ({encoded} images, "
          f"{first['seconds']} s)")
    harness.write_results(args.out, results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
