"""Whole pipeline on a synthetic dataset whose classes are separable in feature space."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from hummingbird.cli.main import main
from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.registry import load_dataset
from hummingbird.datasets.transforms import EvalResize, MemoryAugment
from hummingbird.memory.bank import MemoryBank
from hummingbird.models.backbones import load_backbone
from hummingbird.models.features import TokenFeatures
from hummingbird.pipeline import build_memory_bank, evaluate, make_decoder

QUIET = LoaderOptions(batch_size=4, progress=False)


@pytest.fixture(scope="module")
def features():
    return TokenFeatures(load_backbone("timm:vit_small_patch16_224", weights="random", depth=4))


def test_separable_blocks_reach_high_miou(folder_dataset, features):
    train = load_dataset("folder", folder_dataset, "train", EvalResize(64))
    val = load_dataset("folder", folder_dataset, "val", EvalResize(64))
    bank = build_memory_bank(features, train, 64, opts=QUIET)
    assert bank.features.shape == (len(bank), 384) and bank.labels.shape == (len(bank), 4)
    torch.testing.assert_close(bank.features.norm(dim=1), torch.ones(len(bank)))
    result = evaluate(features, make_decoder(bank, k=5), val, QUIET)
    assert result["mIoU"] >= 0.9, result["per_class_iou"]
    # every class occurs in this split, so the matched mean over all classes can only add to the plain one
    assert result["open_hbird_hungarian_mIoU"] >= result["mIoU"] - 1e-9
    assert result["headline"] == "mIoU" and set(result["open_hbird_hungarian"]["per_class_iou"]) == set(
        result["per_class_iou"])
    assert result["num_images"] == 4


def test_bounded_augmented_memory_has_requested_size(folder_dataset, features):
    train = load_dataset("folder", folder_dataset, "train", MemoryAugment(64), seed=3)
    bank = build_memory_bank(features, train, 64, memory_size=64, augmentation_epochs=2, seed=3, opts=QUIET)
    assert len(bank) == 64  # 8 images x 2 epochs x 4 patches
    images, counts = torch.unique(bank.image_index(), return_counts=True)
    assert images.tolist() == list(range(8)) and set(counts.tolist()) == {8}
    again = build_memory_bank(features, train, 64, memory_size=64, augmentation_epochs=2, seed=3, opts=QUIET)
    assert torch.equal(bank.features, again.features)  # same seed, same bank


def test_cli_build_evaluate_segment(folder_dataset, tmp_path, capsys):
    bank_path, results = tmp_path / "bank.safetensors", tmp_path / "results.json"
    common = ["--weights", "random", "--input-size", "64", "--num-workers", "0", "--no-progress"]
    assert main(["build-memory", "--dataset", "folder", "--data-root", str(folder_dataset), "--split", "train",
                 "--backbone", "dino_vits16", "--no-augment", "--out", str(bank_path), *common]) == 0
    bank = MemoryBank.load(bank_path)
    assert bank.metadata["backbone"] == "dino_vits16" and bank.metadata["input_size"] == 64
    assert main(["evaluate", "--dataset", "folder", "--data-root", str(folder_dataset), "--bank", str(bank_path),
                 "--k", "5", "--out", str(results), *common]) == 0
    payload = json.loads(results.read_text())
    assert payload["mIoU"] >= 0.9 and set(payload["per_class_iou"]) == {"bg", "red", "green", "blue"}
    assert "mIoU" in capsys.readouterr().out

    out_dir = tmp_path / "seg"
    assert main(["segment", "--bank", str(bank_path), "--images", str(folder_dataset / "images" / "img010.png"),
                 "--out-dir", str(out_dir), "--k", "5", "--overlay", "--no-progress", "--num-workers", "0"]) == 0
    labels = np.array(Image.open(out_dir / "img010.png"))
    truth = np.array(Image.open(folder_dataset / "masks" / "img010.png"))
    keep = truth != 255
    assert (labels[keep] == truth[keep]).mean() > 0.9
    assert (out_dir / "img010_overlay.png").is_file()
    assert "img010.png" in json.loads((out_dir / "summary.json").read_text())["class_fractions"]


def test_cli_reports_bank_mismatch(folder_dataset, tmp_path, capsys):
    bank_path = tmp_path / "bank.safetensors"
    common = ["--weights", "random", "--num-workers", "0", "--no-progress"]
    main(["build-memory", "--dataset", "folder", "--data-root", str(folder_dataset), "--split", "train",
          "--backbone", "dino_vits16", "--input-size", "64", "--no-augment", "--out", str(bank_path), *common])
    code = main(["evaluate", "--dataset", "folder", "--data-root", str(folder_dataset), "--bank", str(bank_path),
                 "--input-size", "96", "--out", str(tmp_path / "r.json"), *common])
    err = capsys.readouterr().err
    assert code == 2 and str(bank_path) in err and "input_size" in err and "64" in err and "96" in err


def test_linear_probe_and_overclustering_on_separable_blocks(folder_dataset, tmp_path):
    common = ["--dataset", "folder", "--data-root", str(folder_dataset), "--backbone", "dino_vits16",
              "--weights", "random", "--input-size", "64", "--num-workers", "0", "--no-progress"]
    linear, clusters = tmp_path / "linear.json", tmp_path / "clusters.json"
    assert main(["evaluate", "--protocol", "linear", "--train-split", "train", "--probe-epochs", "60",
                 "--probe-lr", "0.01", "--out", str(linear), *common]) == 0
    result = json.loads(linear.read_text())
    assert result["config"]["protocol"] == "linear" and result["mIoU"] >= 0.9, result["per_class_iou"]
    assert main(["evaluate", "--protocol", "overcluster", "--clusters", "4", "12", "--out", str(clusters),
                 *common]) == 0
    result = json.loads(clusters.read_text())
    assert result["per_k"]["4"]["matching"] == "hungarian" and result["per_k"]["12"]["matching"] == "majority"
    assert result["mIoU"] == result["per_k"]["4"]["mIoU"]
    # random-init tokens separate the colours locally (kNN) but not into 4 round clusters: with
    # overclustering, majority matching recovers the classes
    assert result["per_k"]["12"]["mIoU"] >= 0.9


def _separable_features(n=12, grid=4, patch=8, classes=4, dim=32, seed=0):
    """Masks of patch-aligned class blocks and features = class centre + small noise, per patch."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(classes, dim, generator=g), dim=1)
    cells = torch.randint(0, classes, (n, grid, grid), generator=g)
    feats = centres[cells] + 0.05 * torch.randn(n, grid, grid, dim, generator=g)
    masks = cells.repeat_interleave(patch, 1).repeat_interleave(patch, 2).to(torch.uint8)
    masks[:, 0, :3] = 255  # some ignored pixels
    return feats.half(), masks


def test_overclustering_with_k_equal_classes_on_separable_features():
    from hummingbird.evaluation.probes import cluster_patches, overcluster_scores

    feats, masks = _separable_features()
    names = ["a", "b", "c", "d"]
    result = overcluster_scores(cluster_patches(feats, 4, seed=0), masks, 4, names)
    assert result["matching"] == "hungarian" and result["mIoU"] >= 0.9


def test_linear_probe_on_separable_features():
    from hummingbird.evaluation.probes import linear_probe_scores, train_linear_probe

    feats, masks = _separable_features(n=16)
    probe = train_linear_probe(feats[:12], masks[:12], 4, epochs=30, lr=0.05, progress=False)
    assert linear_probe_scores(probe, feats[12:], masks[12:], ["a", "b", "c", "d"])["mIoU"] >= 0.9


def test_cluster_matching_rules():
    from hummingbird.evaluation.probes import cluster_to_class

    overlap = np.array([[0, 9, 1], [8, 0, 0], [1, 1, 7]])
    assert cluster_to_class(overlap).tolist() == [1, 0, 2]  # one-to-one
    over = np.array([[5, 0], [4, 1], [0, 3], [1, 0]])
    assert cluster_to_class(over).tolist() == [0, 0, 1, 0]  # many-to-one


def test_evaluate_saves_every_prediction_as_palette_png(folder_dataset, tmp_path, capsys):
    bank_path = tmp_path / "bank.safetensors"
    common = ["--weights", "random", "--input-size", "64", "--num-workers", "0", "--no-progress"]
    assert main(["build-memory", "--dataset", "folder", "--data-root", str(folder_dataset), "--split", "train",
                 "--backbone", "dino_vits16", "--no-augment", "--out", str(bank_path), *common]) == 0
    # a wider validation image: predictions are saved at the image's own size, metrics at the input size
    image, mask = (Image.open(folder_dataset / d / "img009.png") for d in ("images", "masks"))
    image.resize((96, 64), Image.NEAREST).save(folder_dataset / "images" / "img009.png")
    mask.resize((96, 64), Image.NEAREST).save(folder_dataset / "masks" / "img009.png")
    evaluate = ["evaluate", "--dataset", "folder", "--data-root", str(folder_dataset), "--bank", str(bank_path),
                "--k", "5", *common]
    assert main([*evaluate, "--out", str(tmp_path / "plain.json")]) == 0
    shown = tmp_path / "shown"
    assert main([*evaluate, "--out", str(tmp_path / "saved.json"), "--save-predictions", str(shown),
                 "--save-overlays"]) == 0
    plain, saved = (json.loads((tmp_path / f).read_text()) for f in ("plain.json", "saved.json"))
    assert saved["confusion_matrix"] == plain["confusion_matrix"]  # the same predictions
    ids = [f"img{i:03d}" for i in range(8, 12)]
    assert sorted(p.name for p in shown.iterdir()) == sorted([f"{i}.png" for i in ids] + [f"{i}_overlay.png" for i in ids])
    for i in ids:
        predicted = Image.open(shown / f"{i}.png")
        truth = np.array(Image.open(folder_dataset / "masks" / f"{i}.png"))
        assert predicted.mode == "P" and predicted.size == (truth.shape[1], truth.shape[0])
        keep = truth != 255
        assert (np.array(predicted)[keep] == truth[keep]).mean() > 0.85
    assert Image.open(shown / "img009_overlay.png").width > 96  # overlay plus legend
    # a folder where predictions would replace the dataset's masks is refused, the masks untouched
    masks = {p.name: p.read_bytes() for p in (folder_dataset / "masks").iterdir()}
    capsys.readouterr()
    code = main([*evaluate, "--out", str(tmp_path / "x.json"), "--save-predictions", str(folder_dataset / "masks")])
    err = capsys.readouterr().err
    assert code == 2 and "--save-predictions would write over the dataset file" in err and "img008.png" in err
    assert {p.name: p.read_bytes() for p in (folder_dataset / "masks").iterdir()} == masks
