#!/usr/bin/env python
"""How fast does the command line answer ``--help``? Each command's help is timed in fresh processes
(``python -m hummingbird [COMMAND] --help``, the whole start-up included: interpreter, package import,
parser) and the median of --repeats runs is printed and written as JSON.

    python eval/bench_cli.py --out runs/bench_cli.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import harness

from hummingbird.cli.parser import build_parser  # light: the parser imports no torch


def commands() -> list[str]:
    """The sub-commands of ``hummingbird``, read from its parser."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def time_help(args: list[str], repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` fresh ``python -m hummingbird <args>`` runs (must exit 0 and print usage)."""
    seconds = []
    for _ in range(repeats):
        wall, done = harness.timed_process(harness.hummingbird(*args))
        if "usage:" not in done.stdout:
            raise SystemExit(f"hummingbird {' '.join(args)} printed no usage: {done.stdout[-500:]}")
        seconds.append(wall)
    return seconds


def main() -> int:
    p = harness.parser(__doc__)
    p.add_argument("--repeats", type=int, default=5, help="runs per command; the median is reported")
    harness.add_out_arg(p, None)
    args = p.parse_args()
    rows = {}
    for name in [None, *commands()]:
        argv = [name, "--help"] if name else ["--help"]
        seconds = time_help(argv, args.repeats)
        rows[" ".join(argv)] = {"median_s": round(statistics.median(seconds), 3), "max_s": round(max(seconds), 3)}
        print(f"hummingbird {' '.join(argv):<28} median {statistics.median(seconds):.3f} s   max {max(seconds):.3f} s")
    slowest = max(r["max_s"] for r in rows.values())
    print(f"slowest: {slowest:.3f} s ({'under' if slowest < 1 else 'NOT under'} 1 s)")
    harness.write_results(args.out, {"python": sys.version.split()[0], "cpus": os.cpu_count(), "repeats": args.repeats,
                                     "commands": rows, "slowest_s": slowest}, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
