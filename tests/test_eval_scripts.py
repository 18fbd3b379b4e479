"""eval/ and data/ scripts on synthetic data: rows, JSON, resume, file sets."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(relative: str):
    path = ROOT / relative
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(path.parent))


def test_table_rows_resume_and_summary(folder_dataset, tmp_path):
    table = _load("eval/hbird_table.py")
    args = ["--dataset", "folder", "--data-root", str(folder_dataset), "--backbone", "dino_vits16",
            "--weights", "random", "--input-size", "64", "--memory-sizes", "32", "64", "--k", "5",
            "--features", "tokens", "fungi-fast",
            "--num-workers", "0", "--batch-size", "4", "--out-dir", str(tmp_path / "run")]
    assert table.main(args) == 0
    rows = sorted((tmp_path / "run" / "rows").glob("*.json"))
    assert [r.name for r in rows] == ["folder_dino_vits16_fungi-fast_full_m32.json",
                                      "folder_dino_vits16_fungi-fast_full_m64.json",
                                      "folder_dino_vits16_tokens_full_m32.json", "folder_dino_vits16_tokens_full_m64.json"]
    tokens_row, fungi_row = json.loads(rows[2].read_text()), json.loads(rows[0].read_text())
    assert tokens_row["memory_patches"] == 32 and 0.5 < tokens_row["mIoU"] <= 1.0
    assert fungi_row["feature_dim"] == 768 and fungi_row["fungi"]["projection"] == "fast"
    assert len(list((tmp_path / "run" / "support").glob("*.safetensors"))) == 1
    stamps = [r.stat().st_mtime_ns for r in rows]
    assert table.main(args) == 0  # resumed: nothing recomputed
    assert [r.stat().st_mtime_ns for r in rows] == stamps
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [(r["feature_kind"], r["memory_size"]) for r in summary["rows"]] == [
        ("tokens", 32), ("tokens", 64), ("fungi-fast", 32), ("fungi-fast", 64)]
    assert "| dino_vits16 | tokens | default | full | 1 | 32 |" in (tmp_path / "run" / "summary.md").read_text()


def test_table_runs_five_seeds_of_a_named_file_set_and_reports_mean_and_std(folder_dataset, tmp_path, monkeypatch):
    table = _load("eval/hbird_table.py")
    from hummingbird.datasets.filesets import SEEDS

    lists = tmp_path / "filesets" / "voc" / "1_div_128"
    lists.mkdir(parents=True)
    for i, seed in enumerate(SEEDS):  # five different 3-image subsets of the 8 training images
        (lists / f"trainaug_128_{seed}.txt").write_text("\n".join(f"img{(i + j) % 8:03d}" for j in range(3)) + "\n")
    monkeypatch.setenv("HUMMINGBIRD_FILESETS", str(tmp_path / "filesets"))
    args = ["--dataset", "folder", "--data-root", str(folder_dataset), "--backbone", "dino_vits16", "--weights",
            "random", "--input-size", "64", "--memory-sizes", "48", "--k", "5", "--no-full", "--filesets", "voc:1/128",
            "--protocol-preset", "open-hbird", "--num-workers", "0", "--batch-size", "4", "--out-dir", str(tmp_path / "r")]
    assert table.main(args) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert sorted(r["row"] for r in summary["rows"]) == sorted(
        f"folder_dino_vits16_tokens_open-hbird_voc-1-128-s{s}_m48" for s in SEEDS)
    assert all(r["protocol_preset"] == "open-hbird" and r["headline"] == "open_hbird_hungarian_mIoU"
               and r["train_images"] == 3 for r in summary["rows"])
    (group,) = summary["aggregates"]
    values = [r["open_hbird_hungarian_mIoU"] for r in summary["rows"]]
    assert group["seeds"] == 5 and group["train_set"] == "voc:1/128"
    assert group["open_hbird_hungarian_mIoU"]["mean"] == pytest.approx(sum(values) / 5)
    assert group["open_hbird_hungarian_mIoU"]["std"] == pytest.approx(float(np.std(values, ddof=1)))
    mean, std = group["mIoU"]["mean"], group["mIoU"]["std"]
    assert f"| 5 | 48 | {100 * mean:.1f} ± {100 * std:.1f} |" in (tmp_path / "r" / "summary.md").read_text()


def test_table_with_sharded_banks_matches_in_memory(folder_dataset, tmp_path):
    table = _load("eval/hbird_table.py")
    args = ["--dataset", "folder", "--data-root", str(folder_dataset), "--backbone", "dino_vits16",
            "--weights", "random", "--input-size", "64", "--memory-sizes", "64", "--k", "5",
            "--num-workers", "0", "--batch-size", "4"]
    assert table.main([*args, "--out-dir", str(tmp_path / "mem")]) == 0
    assert table.main([*args, "--sharded", "--shard-images", "3", "--out-dir", str(tmp_path / "disk")]) == 0
    in_memory, sharded = (json.loads((tmp_path / d / "summary.json").read_text())["rows"][0] for d in ("mem", "disk"))
    assert (tmp_path / "disk" / "banks" / sharded["row"] / "manifest.json").is_file()
    assert sharded["memory_patches"] == in_memory["memory_patches"] == 64
    assert abs(sharded["mIoU"] - in_memory["mIoU"]) < 1e-6


def test_filesets_are_seeded_fractions(folder_dataset, tmp_path):
    make = _load("data/make_filesets.py")
    ids = [f"id{i:04d}" for i in range(1000)]
    a, b = make.fileset_ids(ids, 64, 0), make.fileset_ids(ids, 64, 0)
    assert a == b and len(a) == 16 and a == sorted(a) and len(set(a)) == 16
    assert make.fileset_ids(ids, 64, 1) != a
    assert make.main(["--dataset", "folder", "--data-root", str(folder_dataset), "--split", "train",
                      "--fractions", "4", "--seeds", "0", "--out-dir", str(tmp_path)]) == 0
    listed = (tmp_path / "folder_train_1-4_seed0.txt").read_text().split()
    assert len(listed) == 2 and set(listed) <= {f"img{i:03d}" for i in range(8)}


def test_dense_protocols_rows(folder_dataset, tmp_path):
    protocols = _load("eval/dense_protocols.py")
    args = ["--dataset", "folder", "--data-root", str(folder_dataset), "--backbone", "dino_vits16", "--weights",
            "random", "--input-size", "64", "--clusters", "4", "8", "--probe-epochs", "40", "--probe-lr", "0.01",
            "--num-workers", "0", "--batch-size", "4", "--out-dir", str(tmp_path / "p")]
    assert protocols.main([*args, "--dry-run"]) == 0 and not (tmp_path / "p").exists()
    assert protocols.main(args) == 0
    rows = {r["row"]: r for r in json.loads((tmp_path / "p" / "summary.json").read_text())["rows"]}
    assert set(rows) == {"linear", "overcluster_k4", "overcluster_k8"}
    assert rows["linear"]["mIoU"] >= 0.9 and all(0 <= r["mIoU"] <= 1 for r in rows.values())
