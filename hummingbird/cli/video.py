"""The video task of the command line: ``hummingbird propagate`` (its parser and command) and ``evaluate --task
video`` (its options and command), thin layers over :class:`hummingbird.tasks.video.VideoPropagator` and
:func:`hummingbird.tasks.video.score_predictions`.

Video-only options default to ``None`` so that one given without ``--task video`` is refused; options of the
other tasks given with ``--task video`` are refused the same way (:func:`refused_with_video`). Imports no
heavy library at import time (``--help`` stays light).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hummingbird.catalog import VIDEO_DATASET_KINDS
from hummingbird.cli.argtypes import positive_int
from hummingbird.errors import ConfigError
from hummingbird.models.precision import PRECISIONS

VIDEO_PRESETS = ("dino",)  # hummingbird.tasks.video.VIDEO_PROTOCOLS (kept here: --help imports no torch)
SEGMENTATION_OR_DEPTH = "this command serves segmentation and depth"
VIDEO_DEFAULTS = {"sequences": None, "predictions": None, "max_frames": None}
# options of evaluate that --task video does not use, and the value meaning "not given"
NOT_FOR_VIDEO = {"bank": None, "train_split": None, "save_bank": None, "no_save_bank": False, "fileset": None,
                 "train_fileset": None, "max_images": None, "layer": None, "input_size": None, "index": None,
                 "nprobe": None, "features": "tokens", "protocol_preset": None, "fp16": False,
                 "memory_size": 102_400}


def add_video_args(p: argparse.ArgumentParser) -> None:
    """The ``--task video`` options of ``evaluate``."""
    g = p.add_argument_group("video (--task video)")
    g.add_argument("--sequences", nargs="+", default=None, metavar="SEQ",
                   help="DAVIS sequences to score (default: --split's list in ImageSets/2017, else every sequence "
                        "folder of JPEGImages/480p)")
    g.add_argument("--predictions", default=None, metavar="DIR",
                   help="score existing results DIR/<seq>/<frame>.png (palette PNGs of object ids) instead of "
                        "propagating, as the official DAVIS-2017 toolkit does")
    g.add_argument("--max-frames", type=positive_int, default=None, metavar="N",
                   help="propagate and score each sequence's first N frames only, for a quick trial (default: all)")


def refused_with_video(given: dict) -> None:
    """Refuse, in one line, ``--dataset`` other than davis and options of the other tasks."""
    dataset = given.get("dataset")
    if dataset is not None and dataset not in VIDEO_DATASET_KINDS:
        raise ConfigError(f"--task video reads video datasets ({', '.join(VIDEO_DATASET_KINDS)}), not --dataset "
                          f"{dataset}")
    used = [k for k, unset in NOT_FOR_VIDEO.items() if k in given and given[k] != unset]
    if used:
        raise ConfigError(f"--{used[0].replace('_', '-')} is not a video option; --task video does not use it")


def refused_without_video(given: dict) -> None:
    used = [k for k in VIDEO_DEFAULTS if given.get(k) is not None]
    if used:
        raise ConfigError(f"--{used[0].replace('_', '-')} is a video option: add --task video")
    if given.get("dataset") in VIDEO_DATASET_KINDS:
        raise ConfigError(f"--dataset {given['dataset']} is a video dataset: add --task video")


def _propagator(args, keywords: dict):
    from hummingbird.tasks.video import VideoPropagator

    return VideoPropagator.load(keywords.get("backbone"), keywords.get("weights"),
                                protocol=getattr(args, "video_preset", None) or "dino",
                                device=keywords.get("device", "auto"), precision=keywords.get("precision", "auto"),
                                pos_embed=keywords.get("pos_embed"), compile=keywords.get("compile", False),
                                max_frames=args.max_frames, progress=keywords.get("progress", False))


def format_video_scores(result: dict) -> str:
    """The official toolkit's columns, one line per sequence and the global means."""
    keys = ("JF_mean", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay")
    rows = [("sequence", *keys)]
    rows += [(seq, *(f"{v[k]:.4f}" for k in keys)) for seq, v in result["per_sequence"].items()]
    rows.append(("global", *(f"{result['global'][k]:.4f}" for k in keys)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(keys) + 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def evaluate(args, keywords: dict) -> int:
    """``evaluate --task video``: propagate each sequence's first annotation (or read ``--predictions``) and
    write J&F as ``{"per_sequence", "global", "settings"}``."""
    from hummingbird.datasets.davis import DavisDataset
    from hummingbird.files.atomic import write_json
    from hummingbird.tasks.video import score_predictions

    if args.data_root is None:
        raise ConfigError("--task video needs --data-root (the DAVIS folder: JPEGImages/480p, Annotations/480p)")
    dataset = DavisDataset(args.data_root, args.sequences, args.split)
    if args.predictions:
        if args.save_predictions or args.max_frames:
            raise ConfigError(f"--{'save-predictions' if args.save_predictions else 'max-frames'} propagates; "
                              f"--predictions scores existing results")
        result = score_predictions(dataset, args.predictions)
    else:
        result = _propagator(args, keywords).evaluate(dataset, out_dir=args.save_predictions)
    write_json(args.out, result)
    print(format_video_scores(result))
    print(f"\nwrote {args.out}")
    if args.plot:
        from hummingbird.visual.video import jf_bars

        out = Path(args.out)
        print(f"wrote {', '.join(map(str, jf_bars(result, out.with_name(f'{out.stem}_per_sequence'))))}")
    return 0


# ----------------------------------------------------------------------------- propagate

def add_propagate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("propagate", help="a video's first-frame object mask → every frame's mask (palette PNGs)",
                       description="Video object segmentation by label propagation (docs/video.md): the objects of "
                                   "--first-mask (a palette PNG of object ids on the first frame, 0 = background) "
                                   "are carried through the frames of --frames (in name order) by attention over the "
                                   "first frame and the last 7 frames (protocol preset dino: DINO's "
                                   "eval_video_segmentation.py). Writes OUT/<frame stem>.png and OUT/summary.json.")
    p.add_argument("--frames", required=True, help="folder of the video's frames (.jpg/.jpeg/.png, all one size)")
    p.add_argument("--first-mask", required=True, help="object ids of the first frame (palette or grey PNG)")
    p.add_argument("--out", required=True, help="folder for <frame stem>.png (DAVIS palette) and summary.json")
    p.add_argument("--protocol-preset", dest="video_preset", choices=VIDEO_PRESETS, default="dino",
                   help="dino: DINO's frame scaling (short side 480), queue of 1 + 7 frames, window 12, top-5, "
                        "τ 0.1 (default: dino)")
    p.add_argument("--max-frames", type=positive_int, default=None, metavar="N",
                   help="the first N frames only (default: all)")
    g = p.add_argument_group("backbone")
    g.add_argument("--backbone", default=None, help="backbone preset (hummingbird backbones; default: told from "
                                                      "the weights file name, else $HUMMINGBIRD_BACKBONE)")
    g.add_argument("--weights", default=None, help="weights file (official layout or timm), or 'random'")
    g.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="backbone arithmetic (auto: the preset's, fp32 for dino)")
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda if available)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def cmd_propagate(args) -> int:
    from hummingbird.datasets.davis import FrameFolder, check_first_mask, read_object_mask

    frames = FrameFolder.open(args.frames)  # bad inputs are refused before the backbone loads
    check_first_mask(read_object_mask(args.first_mask)[0], args.first_mask, frames)
    keywords = {"backbone": args.backbone, "weights": args.weights, "precision": args.precision,
                "device": args.device, "progress": not args.no_progress}
    summary = _propagator(args, keywords).propagate_to(frames, args.first_mask, args.out)
    print(f"wrote {summary['num_frames']} masks and summary.json to {args.out} "
          f"({summary['seconds_per_frame']:.3f} s/frame)")
    return 0
