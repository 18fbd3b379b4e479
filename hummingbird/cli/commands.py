"""The commands of the ``hummingbird`` program, each a thin layer over the Python API
(:class:`hummingbird.Segmenter` and the library): arguments → keyword arguments → the library's call →
what it returns, written. torch, timm, faiss and the pipeline are imported inside the commands that
need them, so ``--help`` answers at once."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from hummingbird.catalog import DEFAULT_SPLITS
from hummingbird.cli import depth, video
from hummingbird.errors import ConfigError
from hummingbird.settings import FungiOptions, SearchOptions

# Arguments that are pipeline settings (hummingbird.settings.Settings) or decoder options, by name.
PIPELINE_ARGS = ("backbone", "weights", "layer", "pos_embed", "input_size", "device", "batch_size", "num_workers",
                 "seed", "protocol_preset", "features", "precision", "compile")


def _keywords(args) -> dict:
    """The pipeline, FUNGI and decoder keyword arguments of :class:`hummingbird.Segmenter` that ``args``
    holds (each command has a subset of them)."""
    given = vars(args)
    keywords = {name: given[name] for name in PIPELINE_ARGS if name in given}
    keywords.update({f.name: given[f.name] for f in fields(SearchOptions) if f.name in given})
    keywords.update({f"fungi_{f.name}": given[f"fungi_{f.name}"] for f in fields(FungiOptions)
                     if f"fungi_{f.name}" in given})
    if "fungi_objectives" in keywords:
        keywords["fungi_objectives"] = tuple(keywords["fungi_objectives"])
    keywords["progress"] = not given.get("no_progress", False)
    keywords["verbose"] = True  # the command line prints its notes (the library is quiet unless asked)
    return keywords


def check_inputs(args) -> None:
    """The files and folders a command reads, checked before torch is imported: a missing bank, dataset
    folder, image or weights file is one line at once, in the words the library uses when it loads them."""
    from hummingbird.cli.outputs import image_files
    from hummingbird.files.paths import require_bank, require_data_root, require_weights, weights_from_environment

    given = vars(args)
    if args.command == "label":
        for flag, path, kind in (("PHOTOS_DIR", args.photos, "folder"), ("--classes", args.classes, "file"),
                                 ("--annotations", args.annotations, "file")):
            if path is not None and not (Path(path).is_dir() if kind == "folder" else Path(path).is_file()):
                raise ConfigError(f"{path}: {flag} {kind} not found")
    elif given.get("annotations") is not None:  # coco-json: the annotation file is the split
        if args.dataset != "coco-json":
            raise ConfigError(f"--annotations is read with --dataset coco-json, not {args.dataset}")
        if args.split is not None:
            raise ConfigError("--dataset coco-json: give --annotations FILE.json or --split FILE.json, not both")
        args.split = args.annotations
    if given.get("dataset") in ("coco-json", "labelme") and given.get("data_root", given.get("path")) is None:
        raise ConfigError(f"--dataset {args.dataset}: give the image folder (--images DIR or --data-root DIR)")
    if "task" in given:  # options of the other task are refused before any file is looked at
        depth.check_task_options(args)
    if given.get("bank"):
        require_bank(args.bank)
    if args.command in ("build-memory", "evaluate") and args.data_root is not None:  # None: the data cache's
        require_data_root(args.data_root)
    if "weights" in given:
        require_weights(weights_from_environment(args.weights))
    if args.command in ("segment", "viewer"):
        image_files(args.images)
    if args.command == "neighbours" and not Path(args.image).is_file():
        raise ConfigError(f"{args.image}: image file not found")


def _memory_keywords(args) -> dict:
    return {"memory_size": args.memory_size, "augmentation_epochs": args.augmentation_epochs,
            "augment": not args.no_augment, "fp16": args.fp16, "num_classes": args.num_classes,
            "max_images": args.max_images}


def default_bank_path(out: str) -> str:
    """Where ``evaluate --train-split`` keeps the memory it built: beside its results, ``<out>.bank.safetensors``
    (``runs/voc.json`` → ``runs/voc.bank.safetensors``)."""
    return str(Path(out).with_suffix("")) + ".bank.safetensors"


def resolve_defaults(args) -> None:
    """Defaults that depend on other arguments, filled in before any output is locked: ``evaluate
    --train-split`` keeps its memory beside ``--out`` unless ``--no-save-bank``."""
    if args.command == "evaluate" and args.protocol == "hummingbird" and args.train_split and not args.bank \
            and args.save_bank is None and not args.no_save_bank:
        args.save_bank = default_bank_path(args.out)


def cmd_build_memory(args) -> int:
    if depth.task_of(args) == "depth":
        return depth.build_memory(args, _keywords(args))
    from hummingbird.building import build_sharded
    from hummingbird.runtime.distributed import rank_and_world
    from hummingbird.segmenter import Segmenter

    rank, world = rank_and_world()
    split = args.split or DEFAULT_SPLITS[args.dataset][0]
    if world == 1 and args.shard_images is None and args.out.endswith(".safetensors"):
        segmenter = Segmenter.from_dataset(args.dataset, args.data_root, split, fileset=args.fileset,
                                           **_memory_keywords(args), **_keywords(args))
        bank = segmenter.bank
        segmenter.save(args.out)
        print(f"wrote {args.out}: {len(bank)} patches x {bank.dim} dims, {bank.num_classes} classes")
        return 0
    _, bank = build_sharded(args.dataset, args.data_root, split, args.out, fileset=args.fileset,
                            shard_images=args.shard_images or 256, rank=rank, world=world,
                            **_memory_keywords(args), **_keywords(args))
    if bank is not None:
        print(f"wrote {args.out}/: {len(bank)} patches x {bank.dim} dims in {len(bank.shard_files)} shards, "
              f"{bank.num_classes} classes")
    return 0


def cmd_evaluate(args) -> int:
    from hummingbird.evaluation.results import format_scores
    from hummingbird.files.atomic import write_json
    from hummingbird.runtime.distributed import rank_and_world, sum_over_ranks
    from hummingbird.segmenter import Segmenter

    task = depth.task_of(args)
    if task == "video":
        return video.evaluate(args, _keywords(args))
    if task == "depth":
        return depth.evaluate(args, _keywords(args))
    if args.protocol != "hummingbird":
        return _evaluate_probe(args)
    if args.bank is not None and args.train_split is not None:
        raise ConfigError("give --bank BANK or --train-split SPLIT, not both")
    if args.save_overlays and not args.save_predictions:
        raise ConfigError("--save-overlays needs --save-predictions DIR")
    rank, world = rank_and_world()
    if args.bank:
        segmenter = Segmenter.load(args.bank, **_keywords(args))
    else:
        segmenter = Segmenter.from_dataset(args.dataset, args.data_root,
                                           args.train_split or DEFAULT_SPLITS[args.dataset][0],
                                           fileset=args.train_fileset, **_memory_keywords(args), **_keywords(args))
        if args.save_bank and rank == 0:
            segmenter.save(args.save_bank)
            print(f"wrote {args.save_bank} ({len(segmenter.bank)} patches; evaluate again with --bank "
                  f"{args.save_bank})")
    split = args.split or DEFAULT_SPLITS[args.dataset][1]
    dataset = segmenter.open_dataset(args.dataset, args.data_root, split, fileset=args.fileset,
                                     max_images=args.max_images)
    payload = segmenter.evaluate(dataset, save_predictions=args.save_predictions, overlays=args.save_overlays,
                                 indices=range(rank, len(dataset), world), fileset=args.fileset, kind=args.dataset,
                                 reduce=sum_over_ranks if world > 1 else None)
    if rank > 0:  # each rank evaluated every world-th image; rank 0 reports the summed matrix
        return 0
    payload["processes"] = world
    write_json(args.out, payload)
    print(format_scores(payload))
    print(f"\nwrote {args.out}")
    if args.plot:
        from hummingbird.visual.plots import evaluation_plots

        print(f"wrote {', '.join(str(p) for p in evaluation_plots(payload, args.out))}")
    return 0


def _evaluate_probe(args) -> int:
    """``--protocol linear`` (probe trained on --train-split) or ``overcluster`` (k-means on the split)."""
    from hummingbird.files.atomic import write_json
    from hummingbird.probing import format_probe, probe_evaluation
    from hummingbird.settings import split_keywords

    for option in ("save_predictions", "plot"):
        if getattr(args, option):
            raise ConfigError(f"--{option.replace('_', '-')} works with --protocol hummingbird, not {args.protocol}")
    if args.bank:
        raise ConfigError(f"--protocol {args.protocol} works on features, not on a memory bank; drop --bank")
    settings, _ = split_keywords(_keywords(args))
    payload = probe_evaluation(args.protocol, settings, args.dataset, args.data_root,
                               args.train_split or DEFAULT_SPLITS[args.dataset][0],
                               args.split or DEFAULT_SPLITS[args.dataset][1], train_fileset=args.train_fileset,
                               fileset=args.fileset, num_classes=args.num_classes, clusters=args.clusters,
                               epochs=args.probe_epochs, lr=args.probe_lr, max_images=args.max_images)
    write_json(args.out, payload)
    print(format_probe(payload))
    print(f"\nwrote {args.out}")
    return 0


def cmd_segment(args) -> int:
    import numpy as np
    from tqdm.auto import tqdm

    from hummingbird.cli.outputs import image_files, plan_label_outputs
    from hummingbird.files.atomic import atomic_path, write_json
    from hummingbird.segmenter import Segmenter
    from hummingbird.visual import render

    if depth.task_of(args) == "depth":
        return depth.segment(args, _keywords(args))
    plans = plan_label_outputs(image_files(args.images), args.out_dir, overlay=args.overlay)  # refuse before work
    segmenter = Segmenter.load(args.bank, **_keywords(args))
    names, palette = segmenter.class_names, segmenter.palette
    out_dir = Path(args.out_dir)
    summary, outputs = {}, {}
    for plan in tqdm(plans, desc="segment", disable=args.no_progress, unit="img"):
        image = segmenter.read_image(plan.image)
        labels = segmenter.segment(image, resize_mode=args.resize_mode, image_id=plan.image.stem).astype(np.uint8)
        render.save_label_png(labels, palette, plan.labels)
        if args.overlay:
            picture = render.with_legend(render.overlay(image, labels, palette, args.alpha), labels, names, palette)
            with atomic_path(plan.overlay) as tmp:
                picture.save(tmp, format="PNG")
        counts = np.bincount(labels.ravel(), minlength=segmenter.num_classes)
        summary[plan.key] = {names[c]: round(float(counts[c] / labels.size), 4) for c in np.nonzero(counts)[0]}
        outputs[plan.key] = plan.labels.relative_to(out_dir).as_posix()
    write_json(out_dir / "summary.json", {"bank": args.bank, "input_size": segmenter.input_size,
                                          "resize_mode": args.resize_mode, "class_fractions": summary,
                                          "label_maps": outputs})
    print(f"wrote {len(summary)} label maps{' and overlays' if args.overlay else ''} for {len(plans)} images "
          f"to {out_dir}")
    return 0


def _parse_pair(text: str, option: str) -> tuple[int, int]:
    try:
        a, b = (int(float(v)) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected two numbers separated by a comma") from None
    return a, b


def cmd_neighbours(args) -> int:
    from hummingbird.files.atomic import save_image, write_json
    from hummingbird.segmenter import Segmenter

    segmenter = Segmenter.load(args.bank, data_root=args.data_root, **_keywords(args))
    where = {"patch": _parse_pair(args.patch, "--patch")} if args.patch else {"point": _parse_pair(args.point, "--point")}
    query = segmenter.query_neighbours(args.image, k=args.show, resize_mode=args.resize_mode, **where)
    picture = segmenter.figure(query)
    out = Path(args.out or f"{Path(args.image).stem}_r{query.row}c{query.col}_neighbours.png")
    save_image(picture, out)
    write_json(out.with_suffix(".json"), query.to_dict())
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


def cmd_viewer(args) -> int:
    from tqdm.auto import tqdm

    from hummingbird.cli.outputs import image_files
    from hummingbird.segmenter import Segmenter
    from hummingbird.visual.viewer import build_viewer_data, write_viewer

    segmenter = Segmenter.load(args.bank, data_root=args.data_root, **_keywords(args))
    files = image_files(args.images)[: args.max_images]
    queries = [(path.name, segmenter.query(path, resize_mode=args.resize_mode, k=args.show))
               for path in tqdm(files, desc="viewer", disable=args.no_progress, unit="img")]
    out_dir = Path(args.out)
    page = write_viewer(out_dir, build_viewer_data(segmenter.memory_bank(), queries, segmenter.sources(),
                                                   segmenter.palette, out_dir, decoder_k=segmenter.search.k))
    print(f"wrote {page} ({len(queries)} images); open it in a browser, no server needed")
    return 0


def cmd_check_dataset(args) -> int:
    from hummingbird.datasets.validation import scan_dataset
    from hummingbird.files.atomic import write_json

    report = scan_dataset(args.dataset, args.path, args.split, num_classes=args.num_classes,
                          patch_size=args.patch_size, progress=not args.no_progress)
    print(report.format())
    if args.out:
        write_json(args.out, report.to_dict())
    return 0 if report.ok else 1


def cmd_backbones(args) -> int:
    from hummingbird.models.presets import preset_table, preset_table_text

    print(json.dumps(preset_table(), indent=1) if args.json else preset_table_text(wide=args.wide))
    return 0
