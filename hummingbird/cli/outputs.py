"""Where ``segment`` writes each input's label map: distinct files that never replace an input.

Inputs are image files and folders (their images, not their subfolders). Outputs keep the inputs'
folder structure relative to the folder the inputs have in common (one folder given: its file names),
so ``a/x.jpg`` and ``b/x.jpg`` become ``OUT/a/x.png`` and ``OUT/b/x.png``. Two inputs of one folder
that share a stem (``x.jpg``, ``x.png``) keep their suffix in the name (``x_jpg.png``, ``x_png.png``).
An output that would replace one of the inputs is refused before anything is written.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hummingbird.catalog import IMAGE_SUFFIXES
from hummingbird.errors import ConfigError


@dataclass(frozen=True)
class LabelOutput:
    """One input image and the files written for it."""

    image: Path
    key: str  # the input's path relative to the inputs' common folder (summary.json key)
    labels: Path  # palette PNG of class indices
    overlay: Path  # colour overlay with legend (written with --overlay)


def image_files(paths: list[str]) -> list[Path]:
    """Image files named by ``paths`` (files, and the images directly inside folders), each once."""
    files, seen = [], set()
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            found = [p]
        else:
            raise ConfigError(f"{p}: no such image file or folder")
        for q in found:
            if q.resolve() not in seen:
                seen.add(q.resolve())
                files.append(q)
    if not files:
        raise ConfigError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {' '.join(paths)}")
    return files


def plan_label_outputs(files: list[Path], out_dir: str | Path, overlay: bool = False,
                       overlay_suffix: str = "_overlay") -> list[LabelOutput]:
    """Distinct output paths under ``out_dir`` for ``files``; raises :class:`ConfigError` (naming the file)
    if an output that will be written (label maps, and overlays when ``overlay``) would replace an input
    or two outputs would coincide. ``overlay_suffix``: the second picture's name ends (``segment --task
    depth``: ``_colour``)."""
    out_dir = Path(out_dir)
    parents = [f.resolve().parent for f in files]
    common = Path(os.path.commonpath([str(p) for p in parents]))
    relative = [f.resolve().relative_to(common) for f in files]
    stems = Counter((r.parent, r.stem) for r in relative)
    plans = []
    for f, r in zip(files, relative):
        name = r.stem if stems[(r.parent, r.stem)] == 1 else f"{r.stem}_{r.suffix.lstrip('.').lower()}"
        base = out_dir / r.parent / name
        plans.append(LabelOutput(f, r.as_posix(), base.with_name(name + ".png"),
                                 base.with_name(name + overlay_suffix + ".png")))
    inputs = {f.resolve(): f for f in files}
    written: dict[Path, Path] = {}
    for plan in plans:
        for target in (plan.labels, plan.overlay) if overlay else (plan.labels,):
            resolved = target.resolve()
            if resolved in inputs:
                raise ConfigError(f"{target}: --out-dir would write a label map over the input image "
                                  f"{inputs[resolved]}; choose another --out-dir")
            if resolved in written:
                raise ConfigError(f"{target}: the outputs of {written[resolved]} and {plan.image} would be the same "
                                  f"file; rename one of them")
            written[resolved] = plan.image
    return plans
