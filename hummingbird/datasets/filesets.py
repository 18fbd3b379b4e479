"""Named file sets: the official data-efficient training-id lists of the open Hummingbird evaluation,
shipped in ``data/filesets/`` (open-hummingbird-eval 2.0.0, MIT; see its README), named without paths.

=====================  ==========================================================
name                   file under ``data/filesets/``
=====================  ==========================================================
``voc:1/128:42``       ``voc/1_div_128/trainaug_128_42.txt`` (fractions 1/8, 1/64, 1/128)
``ade20k:1/64:400``    ``ade20k/1_div_64/training_64_400.txt``
``voc:full``           ``voc/full/trainaug.txt`` (all 10,582 trainaug ids)
``voc:val``            ``voc/val.txt`` (the 1,449 val ids)
=====================  ==========================================================

Seeds: 42, 400, 783, 1293, 4019. A fraction without a seed (``voc:1/128``) stands for all five (the table
scripts run each and report mean ± std). Anything that is not such a name is a path to a text file of ids.
``HUMMINGBIRD_FILESETS`` points at another copy of the folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hummingbird.errors import DatasetError, option

SEEDS = (42, 400, 783, 1293, 4019)
FRACTIONS = (8, 64, 128)
_SPLIT_PREFIX = {"voc": "trainaug", "ade20k": "training"}
_NAME = re.compile(r"^(voc|ade20k):(?:1/(\d+)(?::(\d+))?|(full|val))$")


def fileset_root() -> Path:
    """The folder of the shipped file sets (``data/filesets`` of this source tree, or ``$HUMMINGBIRD_FILESETS``)."""
    return Path(os.environ.get("HUMMINGBIRD_FILESETS") or Path(__file__).resolve().parents[2] / "data" / "filesets")


def is_named(spec: str) -> bool:
    """Whether ``spec`` is a file-set name (``voc:1/128:42``, ``voc:1/128``, ``voc:full``, ...)."""
    return bool(_NAME.match(str(spec))) and not Path(spec).is_file()


def expand_fileset(spec: str) -> list[str]:
    """One name or path → the list of single file-set specs it stands for (a seedless fraction → five)."""
    match = _NAME.match(str(spec))
    if match and match.group(2) and not match.group(3) and not Path(spec).is_file():
        return [f"{spec}:{seed}" for seed in SEEDS]
    return [str(spec)]


def resolve_fileset(spec: str | Path) -> Path:
    """A file-set name or path → the id-list file; :class:`DatasetError` naming what is wrong otherwise."""
    if not is_named(str(spec)):
        return Path(spec)
    dataset, fraction, seed, whole = _NAME.match(str(spec)).groups()
    if whole:
        if dataset != "voc":
            raise DatasetError(f"{option('fileset', spec)}: only voc:full and voc:val are shipped; ADE20K's full "
                               f"training split is the default")
        relative = Path("voc") / ("full/trainaug.txt" if whole == "full" else "val.txt")
    else:
        if int(fraction) not in FRACTIONS:
            raise DatasetError(f"{option('fileset', spec)}: fraction 1/{fraction} is not shipped; use 1/8, 1/64 or 1/128")
        if seed is None:
            raise DatasetError(f"{option('fileset', spec)} names {len(SEEDS)} file sets (seeds {', '.join(map(str, SEEDS))}); "
                               f"add one, e.g. {spec}:{SEEDS[0]}")
        if int(seed) not in SEEDS:
            raise DatasetError(f"{option('fileset', spec)}: seed {seed} is not shipped; use one of "
                               f"{', '.join(map(str, SEEDS))}")
        relative = Path(dataset) / f"1_div_{fraction}" / f"{_SPLIT_PREFIX[dataset]}_{fraction}_{seed}.txt"
    path = fileset_root() / relative
    if not path.is_file():
        raise DatasetError(f"{option('fileset', spec)}: {path} not found (the named file sets ship in the source tree's "
                           f"data/filesets; set HUMMINGBIRD_FILESETS to a copy, or pass a path)")
    return path
