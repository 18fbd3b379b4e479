#!/usr/bin/env python
"""Write the data-efficient training file sets: a fixed-seed random fraction of a split's ids.

    python data/make_filesets.py --dataset voc --data-root data/VOCdevkit --split trainaug \
        --fractions 128 64 8 --seeds 0 1 2 --out-dir data/filesets

writes ``voc_trainaug_1-128_seed0.txt`` etc., one id per line, in split order. The draw depends only
on the split's id list, the fraction and the seed, so the same split file gives the same lists
everywhere. Each list holds ``max(1, round(n / fraction))`` ids.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from hummingbird.datasets.registry import DATASET_KINDS, load_dataset


def fileset_ids(ids: list[str], fraction: int, seed: int) -> list[str]:
    """``max(1, round(len(ids) / fraction))`` ids drawn without replacement with ``seed``, in input order."""
    count = max(1, round(len(ids) / fraction))
    picked = np.random.default_rng(seed).choice(len(ids), size=count, replace=False)
    return [ids[i] for i in sorted(picked)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=DATASET_KINDS, required=True)
    p.add_argument("--data-root", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--fractions", type=int, nargs="+", default=[128, 64, 8], help="N for 1/N of the split")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out-dir", default=str(Path(__file__).parent / "filesets"))
    args = p.parse_args(argv)
    ids = [s.id for s in load_dataset(args.dataset, args.data_root, args.split).samples]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for fraction in args.fractions:
        for seed in args.seeds:
            chosen = fileset_ids(ids, fraction, seed)
            path = out / f"{args.dataset}_{args.split}_1-{fraction}_seed{seed}.txt"
            path.write_text("\n".join(chosen) + "\n")
            print(f"{path}: {len(chosen)} of {len(ids)} ids")
    return 0


if __name__ == "__main__":
    sys.exit(main())
