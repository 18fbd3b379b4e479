"""Speed of video label propagation: seconds per 480p frame of ``VideoPropagator.propagate`` against the
backbone alone on the same network inputs, as a ratio measured in one run (goal: ≤ 1.3×).

Both sides see the same frames of one DAVIS sequence (854×480 → 826×476 network input for patch 14). The
backbone side is the encoder's forward pass on inputs prepared beforehand; the propagation side is the whole
per-frame work of ``propagate`` (frame decoding and resizing, the backbone, attention over the context queue
of the first frame + 7 previous frames, top-k, upsampling, the label map at 854×480), PNG writing excluded.
The two are interleaved over ``--repeats`` rounds and the medians compared (each round's own ratio is
recorded too: on a shared machine the load drifts between rounds); the first frame of each propagation run
(no context yet) and a warm-up round are not counted.

    flock /tmp/heavy.lock python eval/bench_video.py --data-root ../shared/davis/DAVIS --sequence blackswan \\
        --weights ../shared/weights/dinov2_vits14_imgfocus.pth --frames 12 --repeats 3 --out runs/bench_video.json
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness


def main(argv=None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--data-root", default=str(harness.SHARED / "davis" / "DAVIS"), help="DAVIS root")
    p.add_argument("--sequence", default="blackswan")
    p.add_argument("--frames", type=int, default=12, help="frames per run (the first, context-free, not timed)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds (after one warm-up round)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    harness.add_backbone_args(p, weights=str(harness.SHARED_WEIGHTS))
    harness.add_runtime_args(p, batch_size=None, seed=False)
    harness.add_out_arg(p, "runs/bench_video.json")
    args = p.parse_args(argv)

    import torch

    from hummingbird.datasets.davis import DavisDataset
    from hummingbird.tasks.video import VideoPropagator

    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = DavisDataset(args.data_root, [args.sequence])
    frames = dataset.frames(args.sequence).first(args.frames)
    first_mask = dataset.first_mask(args.sequence)
    prop = VideoPropagator.load(args.backbone, args.weights, device=args.device)
    inputs = [prop.frame_input(frames.read(i)) for i in range(len(frames))]

    def backbone_alone() -> float:
        """Seconds per frame of the encoder's forward pass (frames 1…n-1)."""
        with harness.timed(args.device) as clock:
            for x in inputs[1:]:
                prop.features(x)
        return clock.seconds / (len(inputs) - 1)

    def propagation() -> float:
        """Seconds per frame of propagate(), from the moment frame 0 is answered to the last frame."""
        run = prop.propagate(frames, first_mask)
        next(run)  # frame 0: features of the first frame, no propagation
        harness.synchronize(args.device)
        started = time.perf_counter()
        count = sum(1 for _ in run)
        harness.synchronize(args.device)
        return (time.perf_counter() - started) / count

    backbone_alone(), propagation()  # warm-up
    rounds = [(backbone_alone(), propagation()) for _ in range(args.repeats)]
    back = statistics.median(r[0] for r in rounds)
    prop_s = statistics.median(r[1] for r in rounds)
    h, w = inputs[0].shape[-2:]
    result = {
        "what": "seconds per frame: VideoPropagator.propagate (dino preset) vs the backbone's forward alone",
        "sequence": args.sequence, "frame_size_wh": list(frames.size), "network_input_wh": [w, h],
        "timed_frames_per_run": len(frames) - 1, "context_frames": 1 + prop.protocol.n_last_frames,
        "backbone_s_per_frame": round(back, 4), "propagation_s_per_frame": round(prop_s, 4),
        "ratio": round(prop_s / back, 3), "goal_ratio": 1.3,
        "ratio_median_of_rounds": round(statistics.median(b / a for a, b in rounds), 3),
        "rounds": [{"backbone_s": round(a, 4), "propagation_s": round(b, 4), "ratio": round(b / a, 3)}
                   for a, b in rounds],
    }
    print(f"{args.sequence} {frames.size[0]}x{frames.size[1]} → {w}x{h}: backbone {back:.3f} s/frame, "
          f"propagation {prop_s:.3f} s/frame, ratio {prop_s / back:.3f} (goal ≤ 1.3)")
    harness.write_results(args.out, result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
