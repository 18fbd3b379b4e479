#!/usr/bin/env python
"""Write a small generated folder dataset (class-coloured blocks) to try every command without downloads.

    python data/make_synthetic.py data/synthetic --train 16 --val 4 --size 128
"""

from __future__ import annotations

import argparse
import sys

from hummingbird.datasets.synthetic import write_block_dataset


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="folder to create")
    p.add_argument("--train", type=int, default=16)
    p.add_argument("--val", type=int, default=4)
    p.add_argument("--size", type=int, default=128, help="image side in pixels")
    p.add_argument("--block", type=int, default=32, help="block side in pixels")
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    root = write_block_dataset(args.out, args.train, args.val, args.size, args.block, args.classes, args.seed)
    print(f"wrote {args.train + args.val} images to {root} (splits train/val, {args.classes} classes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
