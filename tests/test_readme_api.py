"""The marked "Python API" examples (README and docs/getting-started.md) run as written from any folder: they
use the user's paths (what ``prepare-data voc`` writes, the official weights file), which this test
replaces with the real VOC images and weights of ``../shared``; their labels are the command line's for
the same bank and image."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from realdata import real_voc, real_weights

from hummingbird.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "getting-started.md"]
USER_VOC, USER_WEIGHTS = "data/VOCdevkit/VOC2012", "weights/dinov2_vits14_pretrain.pth"


def _examples(page: Path) -> list[str]:
    return re.findall(r"<!-- python-api-example -->\n```python\n(.*?)```\n<!-- /python-api-example -->",
                      page.read_text(), re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_example_is_short_and_takes_the_users_paths(page):
    (example,) = _examples(page)
    assert len(example.strip().splitlines()) <= 10
    assert "../shared" not in example and USER_VOC in example and USER_WEIGHTS in example


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_api_example_runs_from_any_folder_and_matches_the_cli(page, tmp_path, monkeypatch):
    _, weights = real_weights()
    voc = real_voc()
    voc = next(v for v in (voc, voc / "VOC2012", voc / "VOCdevkit" / "VOC2012") if (v / "JPEGImages").is_dir())
    monkeypatch.chdir(tmp_path)
    (example,) = _examples(page)
    scope: dict = {}
    exec(example.replace(USER_VOC, str(voc)).replace(USER_WEIGHTS, str(weights)), scope)  # noqa: S102 (the page's own)
    labels, nearest, photo = scope["labels"], scope["nearest"], scope["photo"]
    assert labels.shape == (photo.height, photo.width) and labels.dtype == np.int64
    assert len(nearest) == 8 and nearest[0].similarity >= nearest[-1].similarity
    assert {n.image_id for n in nearest} <= {"2007_000032", "2007_000039", "2007_000063", "2007_000068"}
    image = Path(photo.filename)
    assert main(["segment", "--bank", "voc4.safetensors", "--images", str(image), "--out-dir", "out",
                 "--num-workers", "0", "--no-progress"]) == 0
    assert np.array_equal(np.array(Image.open(Path("out") / f"{image.stem}.png")), labels)
