"""The README's "Python API" example runs as written on real VOC images and weights, and its labels
are the command line's for the same bank and image."""

import re
from pathlib import Path

import numpy as np
from PIL import Image
from realdata import real_voc, real_weights

from hummingbird.cli.main import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    text = README.read_text()
    block = re.search(r"<!-- python-api-example -->\n```python\n(.*?)```\n<!-- /python-api-example -->", text, re.S)
    assert block, "README has no marked Python API example"
    return block.group(1)


def test_the_example_is_at_most_ten_lines_and_uses_the_users_paths():
    example = _example()
    assert len(example.strip().splitlines()) <= 10
    assert "../shared" not in example and "data/voc/" in example and "weights/" in example


def test_readme_python_api_example_runs_and_matches_the_cli(tmp_path, monkeypatch):
    _, weights = real_weights()
    voc = real_voc()
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    code = _example().replace("data/voc", str(voc)).replace("weights/dinov2_vits14_pretrain.pth", str(weights))
    exec(code, scope)  # noqa: S102 (the README's own example, on the shared assets)
    labels, nearest, photo = scope["labels"], scope["nearest"], scope["photo"]
    assert labels.shape == (photo.height, photo.width) and labels.dtype == np.int64
    assert len(nearest) == 8 and nearest[0].similarity >= nearest[-1].similarity
    assert {n.image_id for n in nearest} <= {"2007_000032", "2007_000039", "2007_000063", "2007_000068"}
    image = Path(photo.filename)
    assert main(["segment", "--bank", "voc4.safetensors", "--images", str(image), "--out-dir", "out",
                 "--num-workers", "0", "--no-progress"]) == 0
    assert np.array_equal(np.array(Image.open(Path("out") / f"{image.stem}.png")), labels)
