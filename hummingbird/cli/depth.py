"""The depth task of the command line (``--task depth`` on build-memory, evaluate and segment): its options
and its commands, each a thin layer over :class:`hummingbird.tasks.depth.DepthEstimator`.

Depth-only options default to ``None`` (their help names the value used), so that one given without
``--task depth`` is refused rather than ignored; segmentation-only options given with ``--task depth`` are
refused the same way. Imports no heavy library at import time (``--help`` stays light).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hummingbird.catalog import (
    DATASET_KINDS,
    DEFAULT_DEPTH_BINS,
    DEFAULT_DEPTH_ENCODING,
    DEFAULT_DEPTH_SPLITS,
    DEPTH_BIN_DECODES,
    DEPTH_DATASET_KINDS,
    DEPTH_ENCODINGS,
    EIGEN_CROP_NAMES,
    VIDEO_DATASET_KINDS,
)
from hummingbird.cli.argtypes import int_at_least, non_negative_float, positive_float
from hummingbird.cli.video import SEGMENTATION_OR_DEPTH, add_video_args, refused_with_video, refused_without_video
from hummingbird.errors import ConfigError

TASKS = ("segmentation", "depth", "video")
#: ``--dataset`` choices of the commands with ``--task``: segmentation layouts, then RGB-D-only, then video ones.
TASK_DATASET_KINDS = DATASET_KINDS + tuple(k for k in DEPTH_DATASET_KINDS if k not in DATASET_KINDS) + \
    VIDEO_DATASET_KINDS
DEPTH_DEFAULTS = {"depth_encoding": DEFAULT_DEPTH_ENCODING, "depth_bins": DEFAULT_DEPTH_BINS,
                  "bin_decode": "log-expectation", "depth_scale": 1000.0, "eigen_crop": "bts", "min_depth": 1e-3,
                  "max_depth": 10.0, "border": "none"}
# segmentation-only options and the value meaning "not given"
SEGMENTATION_ONLY = {"num_classes": None, "augmentation_epochs": 1, "no_augment": False, "shard_images": None,
                     "save_overlays": False, "protocol": "hummingbird", "clusters": None, "overlay": False}


def add_task_args(p: argparse.ArgumentParser, command: str) -> None:
    """``--task`` and the depth options of ``command`` (build-memory, evaluate or segment)."""
    outputs = {"evaluate": "; --save-predictions writes uint16 millimetre PNGs and error maps, --plot per-image "
                           "RMSE and AbsRel bars",
               "segment": "; writes <name>.png (uint16 millimetres) and <name>_colour.png (colour map, scale bar)"}
    p.add_argument("--task", choices=TASKS, default="segmentation",
                   help="segmentation: class labels; depth: monocular depth in metres from an RGB-D memory "
                        "(docs/depth.md; images keep their aspect ratio, --input-size is the short side"
                        + outputs.get(command, "") + ")"
                        + ("; video: J&F of label propagation on DAVIS (docs/video.md)" if command == "evaluate"
                           else "; video: see hummingbird propagate"))
    g = p.add_argument_group("depth (--task depth)")
    if command in ("build-memory", "evaluate"):
        g.add_argument("--depth-encoding", choices=DEPTH_ENCODINGS, default=None,
                       help="per-patch target of the valid pixels: mean (metres), log-mean (mean log depth, "
                            "decoded by exp) or bins (a distribution over log-spaced bins spanning the memory's "
                            f"depths) (default: {DEFAULT_DEPTH_ENCODING})")
        g.add_argument("--depth-bins", type=int_at_least(2), default=None,
                       help=f"bins: number of bins (default: {DEFAULT_DEPTH_BINS})")
        g.add_argument("--bin-decode", choices=DEPTH_BIN_DECODES, default=None,
                       help="bins: expectation (mean of bin centres) or log-expectation (geometric) "
                            "(default: log-expectation)")
        g.add_argument("--depth-scale", type=positive_float, default=None,
                       help="--dataset folder: depth PNG units per metre, 1000 for millimetres, 256 for KITTI, "
                            "5000 for TUM (default: 1000; NYU is millimetres)")
    if command == "evaluate":
        g.add_argument("--eigen-crop", choices=EIGEN_CROP_NAMES, default=None,
                       help="scored region of 640x480 NYU maps: bts [45:471, 41:601] (BTS, AdaBins), densedepth "
                            "[20:460, 24:616], or none (default: bts)")
        g.add_argument("--min-depth", type=non_negative_float, default=None,
                       help="pixels scored where min < ground truth (default: 0.001 m)")
        g.add_argument("--max-depth", type=positive_float, default=None,
                       help="pixels scored where ground truth < max; predictions clipped to [min, max] "
                            "(default: 10 m, NYUv2's)")
        add_video_args(p)
    if command == "segment":
        g.add_argument("--border", choices=("none", "nyu"), default=None,
                       help="nyu: the images are 640x480 NYU frames; only the region inside their white border "
                            "is shown to the model (default: none)")


def task_of(args) -> str:
    """The task ``args`` ask for, after refusing options and datasets of the other task in one line."""
    given = vars(args)
    task = given.get("task", "segmentation")
    dataset = given.get("dataset")
    if task == "video":
        refused_with_video(given)
        used = [k for k, unset in SEGMENTATION_ONLY.items() if k in given and given[k] != unset]
        used += [k for k in DEPTH_DEFAULTS if given.get(k) is not None]
        if used:
            raise ConfigError(f"--{used[0].replace('_', '-')} is not a video option; --task video does not use it")
        return task
    refused_without_video(given)
    if task == "depth":
        if dataset is not None and dataset not in DEPTH_DATASET_KINDS:
            raise ConfigError(f"--task depth reads RGB-D datasets ({', '.join(DEPTH_DATASET_KINDS)}), not "
                              f"--dataset {dataset}")
        used = [k for k, unset in SEGMENTATION_ONLY.items() if k in given and given[k] != unset]
        if given.get("resize_mode") not in (None, "aspect"):
            used.append("resize_mode")
        if used:
            raise ConfigError(f"--{used[0].replace('_', '-')} is a segmentation option; --task depth does not use it")
        return task
    if dataset is not None and dataset not in DATASET_KINDS:
        raise ConfigError(f"--dataset {dataset} is an RGB-D dataset: add --task depth")
    used = [k for k in DEPTH_DEFAULTS if given.get(k) is not None]
    if used:
        raise ConfigError(f"--{used[0].replace('_', '-')} is a depth option: add --task depth")
    return task


def check_task_options(args) -> None:
    """Refuse, in one line, options and datasets of the other task and a depth ``--out`` that is not one
    ``.safetensors`` file (called before any input file is checked)."""
    if args.task == "video" and args.command != "evaluate":
        raise ConfigError(f"{args.command} --task video: {SEGMENTATION_OR_DEPTH}; a video's masks come from "
                          f"hummingbird propagate --frames DIR --first-mask PNG --out DIR")
    if task_of(args) == "depth" and args.command == "build-memory" and not args.out.endswith(".safetensors"):
        raise ConfigError(f"--out {args.out}: a depth memory is one .safetensors file")


def _option(args, name: str):
    value = getattr(args, name, None)
    return DEPTH_DEFAULTS[name] if value is None else value


def _data_root(args) -> str:
    if getattr(args, "data_root", None) is None:
        raise ConfigError("--task depth needs --data-root (the RGB-D dataset folder)")
    return args.data_root


def _memory_keywords(args) -> dict:
    return {"encoding": _option(args, "depth_encoding"), "bins": _option(args, "depth_bins"),
            "bin_decode": _option(args, "bin_decode"), "memory_size": args.memory_size, "fp16": args.fp16}


def build_memory(args, keywords: dict) -> int:
    from hummingbird.tasks.depth import DepthEstimator

    if not args.out.endswith(".safetensors"):
        raise ConfigError(f"--out {args.out}: a depth memory is one .safetensors file")
    split = args.split or DEFAULT_DEPTH_SPLITS[args.dataset][0]
    estimator = DepthEstimator.from_dataset(args.dataset, _data_root(args), split, fileset=args.fileset,
                                            depth_scale=_option(args, "depth_scale"), **_memory_keywords(args),
                                            **keywords)
    estimator.save(args.out)
    bank = estimator.bank
    print(f"wrote {args.out}: {len(bank)} patches x {bank.dim} dims, depth targets {estimator.encoding.label}, "
          f"memory-mean depth {estimator.memory_mean_depth:.3f} m")
    return 0


def evaluate(args, keywords: dict) -> int:
    from hummingbird.evaluation.depth_metrics import format_depth_scores
    from hummingbird.files.atomic import write_json
    from hummingbird.tasks.depth import DepthEstimator

    if (args.bank is None) == (args.train_split is None):
        raise ConfigError("give exactly one of --bank BANK or --train-split SPLIT")
    _data_root(args)
    scale = _option(args, "depth_scale")
    if args.bank:
        estimator = DepthEstimator.load(args.bank, **keywords)
    else:
        estimator = DepthEstimator.from_dataset(args.dataset, args.data_root, args.train_split,
                                                fileset=args.train_fileset, depth_scale=scale,
                                                **_memory_keywords(args), **keywords)
        if args.save_bank:
            estimator.save(args.save_bank)
    split = args.split or DEFAULT_DEPTH_SPLITS[args.dataset][1]
    dataset = estimator.open_dataset(args.dataset, args.data_root, split, fileset=args.fileset, depth_scale=scale)
    result = estimator.evaluate(dataset, eigen_crop=_option(args, "eigen_crop"), min_depth=_option(args, "min_depth"),
                                max_depth=_option(args, "max_depth"), save_predictions=args.save_predictions)
    result["bank"] = {k: v for k, v in estimator.bank.metadata.items() if k not in ("image_ids", "image_files")}
    write_json(args.out, result)
    print(format_depth_scores(result))
    print(f"\nwrote {args.out}")
    if args.plot:
        from hummingbird.visual.depth import per_image_bars

        out = Path(args.out)
        written = []
        for metric in ("rmse", "abs_rel"):
            title = (f"{result['settings']['dataset']} {split}: per-image {metric}, mean {result['metrics'][metric]:.3f} "
                     f"(constant {result['baseline_constant'][metric]:.3f})")
            written += per_image_bars({i: r["metrics"][metric] for i, r in result["per_image"].items()},
                                      {i: r["baseline_constant"][metric] for i, r in result["per_image"].items()},
                                      out.with_name(f"{out.stem}_per_image_{metric}"), metric, title)
        print(f"wrote {', '.join(map(str, written))}")
    return 0


def segment(args, keywords: dict) -> int:
    import numpy as np
    from tqdm.auto import tqdm

    from hummingbird.cli.outputs import image_files, plan_label_outputs
    from hummingbird.datasets.imageio import read_rgb
    from hummingbird.files.atomic import save_image, write_json
    from hummingbird.tasks.depth import DepthEstimator
    from hummingbird.visual.depth import depth_picture, save_depth_png

    plans = plan_label_outputs(image_files(args.images), args.out_dir, overlay=True, overlay_suffix="_colour")
    estimator = DepthEstimator.load(args.bank, **keywords)
    border = None if _option(args, "border") == "none" else _option(args, "border")
    summary, outputs = {}, {}
    for plan in tqdm(plans, desc="depth", disable=args.no_progress, unit="img"):
        image = read_rgb(plan.image, ConfigError)
        depth = estimator.predict(image, border=border)
        save_depth_png(depth, plan.labels)
        save_image(depth_picture(image, depth), plan.overlay, format="PNG")
        summary[plan.key] = {"min_m": round(float(depth.min()), 4), "median_m": round(float(np.median(depth)), 4),
                             "max_m": round(float(depth.max()), 4)}
        outputs[plan.key] = {"depth_mm": plan.labels.relative_to(args.out_dir).as_posix(),
                             "colour": plan.overlay.relative_to(args.out_dir).as_posix()}
    write_json(Path(args.out_dir) / "summary.json", {
        "task": "depth", "bank": args.bank, "input_size": estimator.input_size, "border": border,
        "encoding": estimator.encoding.label, "units": "depth PNGs: uint16 millimetres (0 = no value)",
        "depth_m": summary, "outputs": outputs})
    print(f"wrote {len(summary)} depth maps (uint16 mm) and colour pictures to {args.out_dir}")
    return 0
