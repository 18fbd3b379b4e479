"""eval/depth_nyu.py on a synthetic DenseDepth folder with a random ViT: image-disjoint folds covering every
pair once, the same constant baseline for every encoding, summaries and tables as documented."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("depth_nyu", ROOT / "eval" / "depth_nyu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_folds_are_disjoint_blocks_covering_every_pair():
    folds = _script().folds([f"{i}" for i in range(7)], 3)
    assert [q for _, q in folds] == [["0", "1"], ["2", "3", "4"], ["5", "6"]]
    for memory, queries in folds:
        assert not set(memory) & set(queries) and len(memory) + len(queries) == 7


def test_the_script_measures_every_encoding_on_the_same_splits(tmp_path, monkeypatch):
    root = tmp_path / "nyu"
    (root / "nyu2_test").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / "nyu2_test" / f"{i:05d}_colors.png")
        Image.fromarray(rng.integers(700, 9000, (48, 64)).astype(np.uint16)).save(root / "nyu2_test" / f"{i:05d}_depth.png")
        lines.append(f"{i:05d}_colors.png,{i:05d}_depth.png")
    (root / "nyu2_test.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(sys, "argv", ["depth_nyu.py"])
    out = tmp_path / "r.json"
    assert _script().main(["--data-root", str(root), "--backbone", "dino_vits16", "--weights", "random",
                           "--input-sizes", "32", "--encodings", "mean,log-mean", "--folds", "3", "--leave-one-out", "--k", "5",
                           "--eigen-crop", "none",
                           "--out", str(out), "--table", str(tmp_path / "r.md")]) == 0
    report = json.loads(out.read_text())
    run = report["runs"]["32"]
    assert run["input_shape_wh"] == "48×32" and report["settings"]["fold_queries"][0] == ["00000", "00001"]
    for name in ("mean", "log-mean"):
        assert len(run["folds"][name]) == 3 and len(run["leave_one_out"][name]) == 6
        summary = run["folds_summary"][name]
        assert summary["num_images"] == 6 and 0 <= summary["decoder_better_images"]["rmse"] <= 6
    # the constant baseline depends on the memory, not on the encoding
    assert run["folds_summary"]["mean"]["constant"] == run["folds_summary"]["log-mean"]["constant"]
    table = (tmp_path / "r.md").read_text()
    assert "| 48×32 | kNN log-mean |" in table and "leave-one-out" in table
