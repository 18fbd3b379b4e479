"""eval/fungi_variants.py on synthetic data: per-source JSON, resume, table; its paired bootstrap."""

import json

import numpy as np
from test_eval_scripts import _load


def test_variants_script_writes_sources_resumes_and_summarises(folder_dataset, tmp_path):
    script = _load("eval/fungi_variants.py")
    out = tmp_path / "run"
    args = ["--dataset", "folder", "--data-root", str(folder_dataset), "--train-split", "train", "--val-split", "val",
            "--backbone", "dino_vits16", "--weights", "random", "--input-size", "64", "--k", "5",
            "--variants", "dense-reference", "--bootstrap", "50", "--diagnostic-images", "1",
            "--num-workers", "0", "--batch-size", "4", "--no-progress", "--out-dir", str(out)]
    assert script.main(args) == 0
    done = sorted(p.name for p in (out / "sources").glob("*.json"))
    assert done == ["dense-reference.json", "tokens.json"]
    reference = json.loads((out / "sources" / "dense-reference.json").read_text())
    assert reference["fungi"]["objective_variant"] == "dense-reference" and 0 < reference["negative_mass_share"] < 1
    arrays = np.load(out / "sources" / "dense-reference.npz")
    assert arrays["predictions"].shape == (4, 64, 64) and arrays["confusions"].shape == (4, 4, 4)
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["source"]: r for r in summary["rows"]}
    assert rows["tokens"]["agreement"]["tokens"] == 1.0 and "gap_to_tokens" not in rows["tokens"]
    gap = rows["dense-reference"]["gap_to_tokens"]
    assert gap["low"] <= gap["gap"] <= gap["high"] and gap["resamples"] == 50
    assert gap["gap"] == rows["dense-reference"]["mIoU"] - rows["tokens"]["mIoU"]
    cosines = summary["gradient_cosines"]
    assert cosines["between"]["dense-reference"]["dense-reference"] > 0.9999
    assert 0 < cosines["random_support"]["dense-reference"] < 1
    assert "| dense-reference |" in (out / "summary.md").read_text()
    stamps = [p.stat().st_mtime_ns for p in sorted((out / "sources").iterdir())]
    assert script.main(args) == 0  # resumed: no source recomputed
    assert [p.stat().st_mtime_ns for p in sorted((out / "sources").iterdir())] == stamps


def test_paired_bootstrap_gap_interval():
    script = _load("eval/fungi_variants.py")
    rng = np.random.default_rng(0)
    worse = rng.integers(0, 50, (40, 3, 3))
    same = script.paired_bootstrap_gap(worse, worse, resamples=100)
    assert same == {"gap": 0.0, "low": 0.0, "high": 0.0, "resamples": 100}
    better = worse + np.eye(3, dtype=worse.dtype) * 100  # more true positives on every image
    gap = script.paired_bootstrap_gap(better, worse, resamples=200)
    assert 0 < gap["low"] <= gap["gap"] <= gap["high"]
