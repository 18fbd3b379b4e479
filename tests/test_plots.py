"""Plots of real results read back: eval/hbird_table.py on real VOC images with the real DINOv2 weights at
two memory sizes (224 px, 20 train / 10 val images), and evaluate --plot; plus the data-fraction figure and
CSV from a table's aggregates."""

from __future__ import annotations

import csv
import importlib.util
import re
import sys
from pathlib import Path

import pytest
from PIL import Image
from realdata import real_voc, real_weights

from hummingbird.cli.main import main
from hummingbird.visual.plots import table_plots, write_table_csv

ROOT = Path(__file__).resolve().parents[1]
SIZE, TRAIN, VAL, MEMORY_SIZES = 224, 20, 10, (1024, 4096)


def _series(svg: Path) -> list[str]:
    """Ids of the data series groups of a figure written by hummingbird.visual.plots."""
    return sorted(set(re.findall(r'<g id="(series-\d+)[."]', svg.read_text())))


def _table_module():
    path = ROOT / "eval" / "hbird_table.py"
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location("hbird_table", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(path.parent))


@pytest.mark.realdata
def test_table_plots_from_real_results(tmp_path):
    backbone, weights = real_weights()
    out = tmp_path / "run"
    args = ["--dataset", "voc", "--data-root", str(real_voc()), "--train-split", "train", "--val-split", "val",
            "--backbone", backbone, "--weights", str(weights), "--input-size", str(SIZE),
            "--memory-sizes", *map(str, MEMORY_SIZES), "--limit-train", str(TRAIN), "--limit-val", str(VAL),
            "--no-augment", "--device", "cpu", "--num-workers", "0", "--batch-size", "10", "--out-dir", str(out)]
    assert _table_module().main(args) == 0
    with open(out / "summary.csv") as handle:
        lines = list(csv.DictReader(handle))
    assert [int(r["memory_size"]) for r in lines] == list(MEMORY_SIZES)
    assert all(r["train_fraction"] == "1" and 0 < float(r["mIoU_mean"]) <= 100 and r["mIoU_std"] == "" for r in lines)
    with Image.open(out / "miou_vs_memory.png") as image:
        assert image.size == (640, 420)
    assert _series(out / "miou_vs_memory.svg") == ["series-0"]  # one backbone: one line through both sizes
    assert not (out / "miou_vs_fraction.png").exists()  # one training set: nothing to plot against
    assert _series(out / "per_class_iou.svg") == ["series-0"]
    with Image.open(out / "per_class_iou.png") as image:
        assert image.size[0] >= 600 and image.size[1] == 400


@pytest.mark.realdata
def test_evaluate_plot_writes_per_class_bars_and_confusion_heatmap(tmp_path, capsys):
    backbone, weights = real_weights()
    root = real_voc()
    lists = {split: next(root.glob(f"**/ImageSets/Segmentation/{split}.txt")).read_text().split()[:n]
             for split, n in (("train", TRAIN), ("val", VAL))}
    for split, ids in lists.items():
        (tmp_path / f"{split}.txt").write_text("\n".join(ids) + "\n")
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--dataset", "voc", "--data-root", str(root), "--train-split", "train",
                 "--train-fileset", str(tmp_path / "train.txt"), "--fileset", str(tmp_path / "val.txt"),
                 "--backbone", backbone, "--weights", str(weights), "--input-size", str(SIZE),
                 "--memory-size", str(MEMORY_SIZES[0]), "--no-augment", "--device", "cpu", "--num-workers", "0",
                 "--no-progress", "--out", str(out), "--plot"])
    assert code == 0, capsys.readouterr().err
    assert _series(tmp_path / "eval_per_class.svg") == ["series-0"]
    per_class = (tmp_path / "eval_per_class.svg").read_text()
    assert len(re.findall(r'<g id="series-0\.\d+"', per_class)) == 21  # one bar slot per VOC class
    with Image.open(tmp_path / "eval_per_class.png") as image:
        assert image.size[1] == 400
    with Image.open(tmp_path / "eval_confusion.png") as image:
        assert image.size[0] > image.size[1]  # square matrix plus its colour bar
    heatmap = (tmp_path / "eval_confusion.svg").read_text()
    assert heatmap.count("<image") == 2  # the matrix and its colour bar


def _aggregate(backbone: str, train_set: str, memory: int, mean: float, std: float | None) -> dict:
    stats = {"mean": mean, "std": std, "values": [mean]}
    return {"backbone": backbone, "feature_kind": "tokens", "protocol_preset": "default", "train_set": train_set,
            "memory_size": memory, "seeds": 5 if std is not None else 1, "rows": [], "mIoU": stats,
            "open_hbird_hungarian_mIoU": stats}


def test_fraction_plot_has_one_line_per_backbone_at_its_largest_memory(tmp_path):
    groups = [_aggregate(b, t, m, 0.1 * i + 0.01 * j, 0.02 if t != "full" else None)
              for i, b in enumerate(("dino_vits16", "dinov2_vits14"), 1)
              for j, t in enumerate(("voc:1/128", "voc:1/64", "voc:1/8", "full"))
              for m in (1024, 4096)]
    written = table_plots(groups, [], tmp_path)
    assert sorted(p.name for p in written) == ["miou_vs_fraction.png", "miou_vs_fraction.svg",
                                               "miou_vs_memory.png", "miou_vs_memory.svg"]
    assert len(_series(tmp_path / "miou_vs_fraction.svg")) == 2  # one line per backbone
    assert len(_series(tmp_path / "miou_vs_memory.svg")) == 8  # backbone × train set
    assert "memory 4,096" in (tmp_path / "miou_vs_fraction.svg").read_text()
    write_table_csv(groups, "voc", tmp_path / "t.csv")
    with open(tmp_path / "t.csv") as handle:
        first = next(csv.DictReader(handle))
    assert first["train_fraction"] == "0.0078125" and first["mIoU_mean"] == "10.00" and first["mIoU_std"] == "2.00"


def test_evaluation_figures_name_the_backbone_memory_size_and_dataset(tmp_path, capsys):
    from hummingbird.datasets.synthetic import write_block_dataset

    root = write_block_dataset(tmp_path / "ds", n_train=4, n_val=2)
    out = tmp_path / "r.json"
    assert main(["evaluate", "--dataset", "folder", "--data-root", str(root), "--train-split", "train", "--backbone",
                 "dino_vits16", "--weights", "random", "--input-size", "64", "--out", str(out), "--plot",
                 "--num-workers", "0", "--no-progress"]) == 0
    import json

    result = json.loads(out.read_text())
    patches = result["bank"]["num_patches"]
    for figure in ("r_per_class.png", "r_confusion.png"):
        with Image.open(tmp_path / figure) as image:
            title = image.info["Title"]
        assert title.startswith(f"folder val · dino_vits16 · memory {patches:,} patches: mIoU "), title
        assert f"{100 * result['mIoU']:.1f} % (2 images)" in title
    assert "<dc:title>folder val · dino_vits16" in (tmp_path / "r_confusion.svg").read_text()
