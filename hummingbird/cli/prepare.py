"""``hummingbird prepare-data``: its options and its command, a thin layer over
:func:`hummingbird.datasets.prepare.prepare_dataset` (download, verify, extract, convert, check)."""

from __future__ import annotations

import argparse

from hummingbird.catalog import DEFAULT_SPLITS
from hummingbird.datasets.prepare.archives import PREPARED_DATASETS


def add_prepare_data_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare-data", help="download, verify, convert and check a dataset",
                       description="Download a dataset's official archives (resuming partial downloads) or take them "
                                   "from disk, verify their checksums, extract and convert them into the layout the "
                                   "other commands read (VOC: + SBD trainaug; COCO-Stuff: stuff masks), then check "
                                   "the result. A dataset appears under its final name only when complete.")
    p.add_argument("dataset", choices=PREPARED_DATASETS,
                   help="voc: VOC 2012 + SBD trainaug; ade20k: SceneParsing; coco_stuff: COCO 2017 + COCO-Stuff; "
                        "cityscapes: needs --from-archive (its download needs a login)")
    p.add_argument("--root", required=True, help="folder that receives the dataset (and downloads/)")
    p.add_argument("--mirror", default=None, metavar="URL",
                   help="base URL replacing the official host of each archive (same paths below it); file:///DIR "
                        "reads a local copy in place")
    p.add_argument("--from-archive", nargs="+", default=None, metavar="PATH",
                   help="archives already on disk (official file names), folders holding them, or folders they were "
                        "extracted into (e.g. an extracted VOCdevkit/)")
    p.add_argument("--checksums", default=None, metavar="FILE",
                   help="replace official checksums: lines '<md5|sha1|sha256 hex>  <archive name>' (md5sum format)")
    p.add_argument("--no-sbd", action="store_true",
                   help="voc: VOC 2012 alone, its train and val splits, without SBD's 1.4 GB benchmark.tgz (no "
                        "trainaug; evaluate with --train-split train; the docs' Getting started says which fits a protocol)")
    p.add_argument("--delete-archives", action="store_true", help="delete downloaded archives once prepared")
    p.add_argument("--out", default=None, help="also write the result and checks as JSON here")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")



def cmd_prepare_data(args) -> int:
    from hummingbird.datasets.prepare import prepare_dataset
    from hummingbird.datasets.prepare.archives import read_checksums
    from hummingbird.files.atomic import write_json

    result = prepare_dataset(args.dataset, args.root, mirror=args.mirror, from_archive=args.from_archive or (),
                             checksums=read_checksums(args.checksums) if args.checksums else None,
                             delete_archives=args.delete_archives, progress=not args.no_progress,
                             sbd=not args.no_sbd)
    for report in result.checks:
        print(report.format())
    train = result.splits[0] if result.splits else DEFAULT_SPLITS[args.dataset][0]
    splits = "" if train == DEFAULT_SPLITS[args.dataset][0] else f" --train-split {train} (build-memory: --split {train})"
    print(f"{args.dataset} {'prepared' if result.prepared_now else 'was already prepared'} in {result.data_root}; "
          f"use --dataset {args.dataset} --data-root {result.data_root}{splits}")
    if args.out:
        write_json(args.out, result.to_dict())
    return 0 if result.ok else 1
