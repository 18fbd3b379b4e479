"""The command line end to end with a DINOv3 preset (RoPE, 4 storage tokens) on real Pascal VOC JPEGs:
build-memory → evaluate → segment → neighbours, with plain tokens of two concatenated layers and with
dense FUNGI features. Random weights at full depth (no DINOv3 weights exist on these machines): the
checks are shapes, records and the agreement of the commands, not segmentation quality."""

import json

import pytest
from PIL import Image
from realdata import real_voc

from hummingbird.cli.main import main
from hummingbird.memory.bank import MemoryBank

SIZE, TRAIN, VAL = 224, 4, 2
RUNTIME = ["--num-workers", "0", "--no-progress", "--device", "cpu"]


def _ids(root, split: str, n: int) -> list[str]:
    return next(root.glob(f"**/ImageSets/Segmentation/{split}.txt")).read_text().split()[:n]


@pytest.mark.parametrize("features", [["--features", "tokens", "--layers", "-1", "-4"], ["--features", "fungi"]],
                         ids=["tokens_two_layers", "fungi"])
def test_dinov3_preset_end_to_end_on_real_voc(tmp_path, features):
    root = real_voc()
    (tmp_path / "train.txt").write_text("\n".join(_ids(root, "train", TRAIN)) + "\n")
    val_ids = _ids(root, "val", VAL)
    (tmp_path / "val.txt").write_text("\n".join(val_ids) + "\n")
    backbone = ["--backbone", "dinov3_vits16", "--weights", "random", "--input-size", str(SIZE)]
    extra = ["--fungi-support", str(tmp_path / "support.safetensors")] if "fungi" in features else []
    bank = tmp_path / "bank.safetensors"
    assert main(["build-memory", "--dataset", "voc", "--data-root", str(root), "--split", "train", "--fileset",
                 str(tmp_path / "train.txt"), "--no-augment", "--out", str(bank), *backbone, *features, *extra,
                 *RUNTIME]) == 0
    meta = MemoryBank.load(bank).metadata
    assert meta["backbone"] == "dinov3_vits16" and meta["pos_embed"] == "rope" and meta["patch_size"] == 16
    if "fungi" in features:
        assert meta["feature_kind"] == "fungi" and meta["layer"] == 11 and meta["feature_dim"] == 2 * 384
    else:
        assert meta["layer"] == [11, 8] and meta["feature_dim"] == 2 * 384

    results = tmp_path / "results.json"
    assert main(["evaluate", "--dataset", "voc", "--data-root", str(root), "--split", "val", "--fileset",
                 str(tmp_path / "val.txt"), "--bank", str(bank), "--k", "5", "--index", "Flat", "--out", str(results),
                 *RUNTIME]) == 0
    scores = json.loads(results.read_text())
    assert 0 <= scores["mIoU"] <= 1 and scores["num_images"] == VAL and scores["bank"]["backbone"] == "dinov3_vits16"

    photo = next(root.glob(f"**/JPEGImages/{val_ids[0]}.jpg"))  # 500 x 375: a non-square patch grid
    out_dir = tmp_path / "segment"
    assert main(["segment", "--bank", str(bank), "--images", str(photo), "--out-dir", str(out_dir), "--k", "5",
                 *RUNTIME]) == 0
    assert Image.open(out_dir / f"{photo.stem}.png").size == Image.open(photo).size

    shown_png = tmp_path / "neighbours.png"
    assert main(["neighbours", "--bank", str(bank), "--image", str(photo), "--patch", "3,5", "--resize-mode", "square",
                 "--k", "4", "--index", "Flat", "--out", str(shown_png), *RUNTIME]) == 0
    shown = json.loads(shown_png.with_suffix(".json").read_text())["neighbours"]
    assert len(shown) == 4
    similarities = [n["similarity"] for n in shown]
    assert similarities == sorted(similarities, reverse=True)
