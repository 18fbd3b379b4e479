"""Fidelity of the ``dino`` video protocol to DINO's official ``eval_video_segmentation.py``: our propagation of
the first 20 frames of DAVIS ``blackswan`` and ``dog`` against the official code's outputs in
``../shared/peers/dino-davis-reference`` (same weights, same frames).

Per sequence: the share of pixels whose label equals the official one (all frames, and the worst frame), the
largest difference of the patch features (frames 0-2), of the first mask on the patch grid and of the soft
segmentations (frames 1-19), and the mean J (plain IoU, frames 1-19) of both against the ground truth.

    flock /tmp/heavy.lock python eval/fidelity_video.py --weights ../shared/weights/dinov2_vits14_imgfocus.pth \\
        --out runs/fidelity_video.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness


def main(argv=None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--reference", default=str(harness.SHARED / "peers" / "dino-davis-reference"),
                   help="the reference folder (<seq>.npz, labels/<seq>/, reference.json)")
    p.add_argument("--data-root", default=str(harness.SHARED / "davis" / "DAVIS"), help="DAVIS root")
    p.add_argument("--sequences", nargs="+", default=["blackswan", "dog"])
    harness.add_backbone_args(p, weights=str(harness.SHARED_WEIGHTS))
    harness.add_runtime_args(p, batch_size=None, seed=False)
    harness.add_out_arg(p, "runs/fidelity_video.json")
    args = p.parse_args(argv)

    import numpy as np
    import torch
    from PIL import Image

    from hummingbird.tasks.video import VideoPropagator

    reference = Path(args.reference)
    settings = json.loads((reference / "reference.json").read_text())
    frames_n = settings["settings_used"]["max_frames"]
    prop = VideoPropagator.load(args.backbone, args.weights, device=args.device, max_frames=frames_n)
    davis = Path(args.data_root)
    per_sequence = {}
    for seq in args.sequences:
        ref = np.load(reference / f"{seq}.npz")
        feats: dict = {}
        started = time.perf_counter()
        frames = list(prop.propagate(davis / "JPEGImages" / "480p" / seq, davis / "Annotations" / "480p" / seq /
                                     "00000.png", keep_soft=True, features_of=feats))
        seconds = time.perf_counter() - started
        ours = np.stack([f.labels for f in frames])
        theirs = np.stack([np.array(Image.open(reference / "labels" / seq / n)) for n in ref["frame_names"]])
        equal = ours == theirs
        soft = torch.stack([f.soft for f in frames[1:]]).numpy()
        gt = ref["gt"] == 1 if ref["gt"].max() <= 1 else ref["gt"] == 255

        def mean_j(pred, gt=gt):
            fg = pred[1:] == 1
            return float(np.mean([(a & b).sum() / (a | b).sum() for a, b in zip(fg, gt[1:])]))

        soft_diff = np.abs(soft - ref["soft_seg"])
        per_sequence[seq] = {
            "frames": len(frames),
            "labels_equal_pct": round(100 * float(equal.mean()), 6),
            "labels_equal_worst_frame_pct": round(100 * float(equal.reshape(len(equal), -1).mean(1).min()), 6),
            "pixels_differing": int((~equal).sum()),
            "features_max_abs_diff": float(np.abs(torch.stack(list(feats.values())[:3]).numpy()
                                                  - ref["features"]).max()),
            "first_seg_max_abs_diff": float(np.abs(frames[0].soft.numpy() - ref["first_seg"]).max()),
            "soft_seg_max_abs_diff": float(soft_diff.max()),
            "soft_seg_values_within_1e-4_pct": round(100 * float((soft_diff <= 1e-4).mean()), 4),
            "J_mean_ours": round(mean_j(ours), 6), "J_mean_reference": round(mean_j(theirs), 6),
            "J_mean_reference_recorded": settings["sequences"][seq]["J_mean_frames_1_to_last"],
            "seconds": round(seconds, 2),
        }
        r = per_sequence[seq]
        print(f"{seq}: labels equal on {r['labels_equal_pct']:.5f} % of pixels ({r['pixels_differing']} differ), "
              f"features ±{r['features_max_abs_diff']:.1e}, soft ±{r['soft_seg_max_abs_diff']:.1e}, "
              f"J {r['J_mean_ours']:.4f} vs {r['J_mean_reference']:.4f}")
    harness.write_results(args.out, {"what": "dino video protocol vs DINO's official eval_video_segmentation.py",
                                     "reference": str(reference), "per_sequence": per_sequence}, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
