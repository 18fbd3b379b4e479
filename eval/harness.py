"""What every benchmark script in ``eval/`` shares, so that each script holds only its own measurement.

* where the real data is: ``SHARED`` (``../shared``), :func:`shared_weights`, :func:`shared_voc`;
* the command line: :func:`parser` (description and epilog from the script's docstring) and the options
  the scripts have in common (:func:`add_data_args`, :func:`add_backbone_args`, :func:`add_runtime_args`,
  :func:`add_out_arg`);
* VOC id subsets: :func:`voc_ids`, :func:`write_ids`, :func:`voc_subset`;
* timing: :class:`timed` (a block, in process, CUDA synchronised), :func:`timed_process` / :func:`run_cli`
  (a fresh process, start-up included), :func:`median_run`, :func:`repeated_runs` (interleaved),
  :func:`spread`, :func:`peak_rss_gib`;
* results: :func:`environment` (machine, CPU flags, library versions, date, command),
  :func:`markdown_table`, :func:`write_results` (atomic JSON with the settings and the environment).

Importing it puts this checkout first on ``sys.path``, so a script run as ``python eval/x.py`` measures
this checkout's code. It imports no heavy library itself.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_WEIGHTS = SHARED / "weights" / "dinov2_vits14_imgfocus.pth"  # the real DINOv2 ViT-S/14 of ../shared
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# ----------------------------------------------------------------------------- real data in ../shared

def shared_weights(backbone: str) -> str | None:
    """The ``../shared/weights`` file that ``weights.json`` names for ``backbone`` (``None`` if absent)."""
    import json

    listing = SHARED / "weights" / "weights.json"
    if not listing.is_file():
        return None
    for entry in json.loads(listing.read_text()):
        path = SHARED / "weights" / entry["file"]
        if entry.get("backbone") == backbone and path.is_file():
            return str(path)
    return None


def shared_voc() -> Path | None:
    """``../shared/voc`` when it holds Pascal VOC images, else ``None``."""
    root = SHARED / "voc"
    return root if (root / "VOCdevkit" / "VOC2012" / "JPEGImages").is_dir() else None


# ----------------------------------------------------------------------------- command line

def parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose description is the first paragraph of ``doc`` (a script's docstring) and whose
    epilog is the rest, laid out as written."""
    description, _, rest = doc.strip().partition("\n\n")
    return argparse.ArgumentParser(description=description, epilog=rest or None,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def add_data_args(p, dataset: str | None = "voc", data_root: str | None = None, splits: bool = False,
                  choices=None) -> None:
    """``--dataset`` (required when ``dataset`` is ``None``), ``--data-root`` (required when ``data_root``
    is ``None``) and, with ``splits``, ``--train-split`` / ``--val-split`` (default: the dataset's)."""
    p.add_argument("--dataset", default=dataset, required=dataset is None, choices=choices)
    p.add_argument("--data-root", default=data_root, required=data_root is None,
                   help="dataset folder" + (f" (default: {data_root})" if data_root else ""))
    if splits:
        p.add_argument("--train-split", default=None, help="default: the dataset's training split")
        p.add_argument("--val-split", default=None, help="default: the dataset's evaluation split")


def add_backbone_args(p, backbone: str | None = "dinov2_vits14", weights: str | None = None,
                      weights_help: str = "weights file, or 'random'", required: bool = False) -> None:
    """``--backbone`` (a preset name) and ``--weights``."""
    p.add_argument("--backbone", default=backbone, required=required, help="backbone preset")
    p.add_argument("--weights", default=weights, help=weights_help)


def add_runtime_args(p, batch_size: int | None = 8, num_workers: int | None = None, device: bool = True,
                     seed: bool = True) -> None:
    """``--device`` (cuda when available), ``--batch-size``, ``--num-workers`` and ``--seed``; an option
    whose default is ``None`` (or ``False``) is left out."""
    if device:
        p.add_argument("--device", default=default_device())
    if batch_size is not None:
        p.add_argument("--batch-size", type=int, default=batch_size)
    if num_workers is not None:
        p.add_argument("--num-workers", type=int, default=num_workers)
    if seed:
        p.add_argument("--seed", type=int, default=0)


def add_out_arg(p, default: str | None, what: str = "JSON file to write") -> None:
    p.add_argument("--out", default=default, help=what)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# ----------------------------------------------------------------------------- VOC id subsets

def voc_ids(root: str | Path, split: str, count: int | None = None) -> list[str]:
    """The first ``count`` ids (all with ``None``) of a VOC split, in the split list's order."""
    from hummingbird.datasets.registry import load_dataset

    return [s.id for s in load_dataset("voc", root, split).samples[:count]]


def write_ids(path: Path, ids: list[str]) -> str:
    """An id file, one id per line; returns its path as text (for a command line)."""
    path.write_text("\n".join(ids) + "\n")
    return str(path)


def voc_subset(root: Path, folder: Path, train_images: int, val_images: int) -> tuple[str, str, list[str]]:
    """Id files of the first ``train_images`` train and ``val_images`` val ids of a VOC root, written in
    ``folder``: ``(train.txt, val.txt, val ids)``."""
    val = voc_ids(root, "val", val_images)
    train = voc_ids(root, "train", train_images)
    return write_ids(folder / "train.txt", train), write_ids(folder / "val.txt", val), val


def voc_commands(root: Path, folder: Path, train_images: int, val_images: int, bank: Path, result: Path,
                 common: list[str] = (), build: list[str] = (), evaluate: list[str] = ()
                 ) -> tuple[list[str], list[str], list[str]]:
    """``hummingbird build-memory`` of the first ``train_images`` VOC train ids into ``bank`` and
    ``hummingbird evaluate`` of the first ``val_images`` val ids with it into ``result`` (id files written
    in ``folder``), each with the options ``common`` and its own: ``(build argv, evaluate argv, val ids)``."""
    train_file, val_file, val_ids = voc_subset(root, folder, train_images, val_images)
    data = ["--dataset", "voc", "--data-root", str(root), *common]
    return (["build-memory", *data, "--split", "train", "--fileset", train_file, *build, "--out", str(bank)],
            ["evaluate", *data, "--split", "val", "--fileset", val_file, "--bank", str(bank), *evaluate,
             "--out", str(result)], val_ids)


# ----------------------------------------------------------------------------- timing

def synchronize(device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


class timed:
    """Wall seconds of a block, with ``device``'s queued work finished at both ends::

        with timed(device) as clock:
            build()
        clock.seconds
    """

    def __init__(self, device="cpu"):
        self.device, self.seconds = device, 0.0

    def __enter__(self) -> timed:
        synchronize(self.device)
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._started


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed_process(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds and result (text output) of one fresh process ``argv`` importing this checkout; one
    that exits other than 0 ends the script, naming the command and the end of its error output."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])} ... failed:\n{done.stderr[-2000:]}")
    return seconds, done


def hummingbird(*argv: str) -> list[str]:
    """The command line of ``python -m hummingbird ARGV...`` with this interpreter."""
    return [sys.executable, "-m", "hummingbird", *argv]


def run_cli(argv: list[str]) -> float:
    """Wall seconds of one ``python -m hummingbird ...`` process run from this checkout (must exit 0)."""
    return timed_process(hummingbird(*argv))[0]


def median_run(argv: list[str], repeats: int) -> tuple[float, list[float]]:
    """Median wall seconds of ``repeats`` fresh processes ``argv``, and each run's."""
    times = [timed_process(argv)[0] for _ in range(repeats)]
    return statistics.median(times), times


def repeated_runs(commands: dict[str, list[str]], repeats: int) -> dict[str, list[float]]:
    """Wall seconds of ``repeats`` whole ``hummingbird`` runs of each command, interleaved (a, b, a, b, ...),
    so that a change in machine load hits every command alike."""
    seconds = {name: [] for name in commands}
    for _ in range(repeats):
        for name, argv in commands.items():
            seconds[name].append(run_cli(argv))
    return seconds


def spread(seconds: list[float], images: int) -> dict:
    """Seconds per image of repeated whole runs over ``images`` images: mean, each run, and the spread
    (max − min) / mean."""
    per = [s / images for s in seconds]
    mean = statistics.mean(per)
    return {"s_per_image": round(mean, 4), "runs_s_per_image": [round(p, 4) for p in per],
            "spread": round((max(per) - min(per)) / mean, 3)}


# ----------------------------------------------------------------------------- results

def environment(device: str = "cpu") -> dict:
    """Where a figure was measured: date, command, CPU model and bf16/fp16 flags, threads, platform,
    Python, torch and faiss versions, and the GPU on a CUDA ``device``."""
    import torch

    from hummingbird.models.precision import processor

    info = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "cpu": processor(), "cpus": os.cpu_count(), "cpu_threads": torch.get_num_threads(),
            "platform": platform.platform(), "device": str(device), "python": platform.python_version(),
            "torch": torch.__version__}
    try:
        import faiss

        info["faiss"] = faiss.__version__
    except ImportError:
        pass
    if str(device).startswith("cuda"):
        info.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                    gpu=torch.cuda.get_device_name(device),
                    gpu_memory_gib=round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1))
    return info


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table: ``| a | b |``, ``|---|---|``, then one line per row (cells as ``str``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def settings_of(args: argparse.Namespace | dict | None) -> dict:
    """The options a script ran with, as JSON values."""
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    plain = (str, int, float, bool, type(None), list, dict)
    return {k: v if isinstance(v, plain) else str(v) for k, v in given.items()}


def write_results(path: str | Path | None, results: dict, args=None, env: dict | None = None,
                  quiet: bool = False) -> Path | None:
    """Write ``results`` as JSON at ``path`` (atomically: never half a file), with ``settings`` (the
    script's options, ``args``) and ``environment`` (``env``, else :func:`environment` of ``args.device``)
    added unless ``results`` has them, and print ``wrote PATH``. Nothing is written when ``path`` is ``None``."""
    if path is None:
        return None
    from hummingbird.files.atomic import write_json

    payload = dict(results)
    if args is not None:
        payload.setdefault("settings", settings_of(args))
    if "environment" not in payload:
        payload["environment"] = env or environment(getattr(args, "device", None) or "cpu")
    write_json(path, payload)
    if not quiet:
        print(f"wrote {path}")
    return Path(path)
