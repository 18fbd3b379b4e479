"""The ``hummingbird`` program: parse the command line, run the command, and turn every error meant for
users into one line (exit status 2), SIGTERM and Ctrl-C into a clean exit (143).

The commands are in :mod:`hummingbird.cli.commands`, the argument parser in :mod:`hummingbird.cli.parser`.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from hummingbird.cli.commands import (
    check_inputs,
    cmd_backbones,
    cmd_build_memory,
    cmd_check_dataset,
    cmd_evaluate,
    cmd_neighbours,
    cmd_segment,
    cmd_viewer,
    resolve_defaults,
)
from hummingbird.cli.label import cmd_label
from hummingbird.cli.parser import build_parser
from hummingbird.cli.prepare import cmd_prepare_data
from hummingbird.cli.video import cmd_propagate
from hummingbird.errors import HummingbirdError, command_line_names

COMMANDS = {"build-memory": cmd_build_memory, "evaluate": cmd_evaluate, "segment": cmd_segment,
            "neighbours": cmd_neighbours, "viewer": cmd_viewer, "check-dataset": cmd_check_dataset,
            "prepare-data": cmd_prepare_data, "backbones": cmd_backbones, "propagate": cmd_propagate,
            "label": cmd_label}


def _user_message(exc: Exception) -> str:
    """The error's own one-line message, also when a DataLoader worker re-raised it with its traceback."""
    text = str(exc)
    marker = f"{type(exc).__name__}: "
    if "Original Traceback" in text and marker in text:
        return text.rsplit(marker, 1)[1].strip()
    return text


@contextmanager
def _output_locks(args) -> Iterator[None]:
    """Hold the lock of each bank this command writes (build-memory --out, evaluate --save-bank), so that a
    second process writing the same output is refused instead of silently overwriting it. Under torchrun
    rank 0 holds it for all ranks."""
    from hummingbird.files.locking import exclusive_output

    outputs = {"build-memory": ["out"], "evaluate": ["save_bank"]}.get(args.command, [])
    with ExitStack() as stack:
        if int(os.environ.get("RANK", "0")) == 0:
            for dest in outputs:
                if getattr(args, dest, None):
                    stack.enter_context(exclusive_output(getattr(args, dest), "--" + dest.replace("_", "-")))
        yield


def _data_root_from_cache(args) -> None:
    """A dataset named without its folder (``--dataset voc`` and no ``--data-root``; ``check-dataset`` without
    PATH) is the one in the data cache, prepared there first when absent (:mod:`hummingbird.datasets.cache`)."""
    dest = {"build-memory": "data_root", "evaluate": "data_root", "check-dataset": "path"}.get(args.command)
    if dest is None or getattr(args, dest) is not None or getattr(args, "task", "segmentation") != "segmentation":
        return  # depth and video datasets are not prepared into the cache: their commands ask for the folder
    from hummingbird.datasets.cache import dataset_from_cache

    result = dataset_from_cache(args.dataset, progress=not args.no_progress)
    for report in result.checks:
        print(report.format(), file=sys.stderr)
    print(f"{args.dataset}: {'prepared now in' if result.prepared_now else 'found in'} the data cache: "
          f"{result.data_root}", file=sys.stderr)
    if not result.ok:
        from hummingbird.errors import warn

        warn(f"the check of {result.data_root} found problems (above)")
    setattr(args, dest, result.data_root)


class Terminated(BaseException):
    """SIGTERM arrived; raised so that clean-up (temporary files) runs before exiting. A BaseException,
    like KeyboardInterrupt, so that no ``except Exception`` on the way turns it into another error."""


def _raise_terminated(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    resolve_defaults(args)
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if threading.current_thread() is threading.main_thread() else None
    if previous is not None:  # past `ulimit -f` a write fails with EFBIG, named in one line, instead of killing us
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        with command_line_names(), _output_locks(args):
            check_inputs(args)  # before torch is imported: a missing file is answered at once
            _data_root_from_cache(args)
            return COMMANDS[args.command](args)
    except HummingbirdError as exc:
        print(f"hummingbird {args.command}: error: {_user_message(exc)}", file=sys.stderr)
        return 2
    except (Terminated, KeyboardInterrupt):
        print(f"hummingbird {args.command}: interrupted; files written so far are complete, nothing partial was "
              f"left", file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def entry_point(argv: list[str] | None = None) -> int:
    """The ``hummingbird`` program (and ``python -m hummingbird``): :func:`main`, after which every object
    alive is frozen out of the garbage collector, so the interpreter's final collection skips the
    ≈ 400,000 objects torch and timm create on import (walking them cost ≈ 1.2 s at every exit on 2 cores;
    ``eval/bench_latency.py``). Only for a process about to exit: in-process callers use :func:`main`."""
    try:
        return main(argv)
    finally:
        gc.freeze()


if __name__ == "__main__":
    sys.exit(entry_point())
