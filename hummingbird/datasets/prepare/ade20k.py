"""ADE20K SceneParsing: the ``ADEChallengeData2016.zip`` is used as it is (raw labels; the loader shifts them)."""

from __future__ import annotations

from pathlib import Path

from hummingbird.datasets.prepare.unpack import extract
from hummingbird.errors import DatasetError


def build(stage: Path, archives: dict[str, Path], progress: bool = True) -> Path:
    """Extract the zip into ``stage``; returns ``stage/ADEChallengeData2016``."""
    archive = archives["ADEChallengeData2016.zip"]
    extract(archive, stage, progress=progress)
    ade = stage / "ADEChallengeData2016"
    if not all((ade / kind / split).is_dir() for kind in ("images", "annotations")
               for split in ("training", "validation")):
        raise DatasetError(f"{archive}: no ADEChallengeData2016/{{images,annotations}}/{{training,validation}}/ "
                           f"inside; not the SceneParsing archive")
    return ade
