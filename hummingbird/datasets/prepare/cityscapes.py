"""Cityscapes from the two zips a logged-in user downloads: fine ``labelIds`` maps and their images.

Only the train and val parts the loader reads are extracted (``*_gtFine_labelIds.png`` and
``leftImg8bit/{train,val}``); :class:`hummingbird.datasets.base.CityscapesSegmentation` maps label ids to the
19 train ids (others ignored) when it reads a mask, so no converted copy is written."""

from __future__ import annotations

import re
from pathlib import Path

from hummingbird.datasets.prepare.unpack import extract
from hummingbird.errors import DatasetError

_LABELS = re.compile(r"gtFine/(train|val)/[^/]+/[^/]+_gtFine_labelIds\.png")
_IMAGES = re.compile(r"leftImg8bit/(train|val)/[^/]+/[^/]+_leftImg8bit\.png")


def build(stage: Path, archives: dict[str, Path], progress: bool = True) -> Path:
    """Extract into ``stage/cityscapes``; returns that folder."""
    out = stage / "cityscapes"
    for name, pattern in (("gtFine_trainvaltest.zip", _LABELS), ("leftImg8bit_trainvaltest.zip", _IMAGES)):
        extract(archives[name], out, keep=lambda member, p=pattern: p.fullmatch(member) is not None,
                progress=progress)
        if not (out / pattern.pattern.split("/")[0] / "train").is_dir():
            raise DatasetError(f"{archives[name]}: no {pattern.pattern.split('/')[0]}/train/<city>/ files inside; "
                               f"not the Cityscapes {name}")
    return out
