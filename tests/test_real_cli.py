"""The command line end to end on real Pascal VOC JPEGs with the real DINOv2 weights (small: 224 px,
12 train / 6 val images): build-memory → evaluate --save-predictions → segment → neighbours.

The shared weights are saliency-tuned, so nothing here claims segmentation quality; the checks are the
invariants a user relies on: the CLI's numbers are the library's, the saved predictions are the ones the
metric was computed from, segment on a real JPEG gives the evaluation's prediction, and the neighbours a
user is shown are the ones that voted.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from realdata import real_voc, real_weights

from hummingbird.cli.main import main
from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.registry import load_dataset
from hummingbird.datasets.transforms import EvalResize
from hummingbird.memory.bank import MemoryBank
from hummingbird.models.backbones import load_backbone
from hummingbird.models.features import TokenFeatures
from hummingbird.pipeline import evaluate, make_decoder

SIZE, TRAIN, VAL, K = 224, 12, 6, 10


def _ids(root, split: str, n: int) -> list[str]:
    listing = next(root.glob(f"**/ImageSets/Segmentation/{split}.txt"))
    return listing.read_text().split()[:n]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """Bank, evaluation results and saved predictions made by the CLI on real VOC images."""
    backbone, weights = real_weights()
    root = real_voc()
    tmp = tmp_path_factory.mktemp("real_cli")
    train_ids, val_ids = _ids(root, "train", TRAIN), _ids(root, "val", VAL)
    (tmp / "train.txt").write_text("\n".join(train_ids) + "\n")
    (tmp / "val.txt").write_text("\n".join(val_ids) + "\n")
    common = ["--backbone", backbone, "--weights", str(weights), "--input-size", str(SIZE), "--num-workers", "0",
              "--no-progress", "--device", "cpu"]
    bank_path = tmp / "bank.safetensors"
    assert main(["build-memory", "--dataset", "voc", "--data-root", str(root), "--split", "train",
                 "--fileset", str(tmp / "train.txt"), "--no-augment", "--out", str(bank_path), *common]) == 0
    results, predictions = tmp / "results.json", tmp / "predictions"
    assert main(["evaluate", "--dataset", "voc", "--data-root", str(root), "--split", "val",
                 "--fileset", str(tmp / "val.txt"), "--bank", str(bank_path), "--k", str(K), "--index", "Flat",
                 "--out", str(results), "--save-predictions", str(predictions), *common]) == 0
    return dict(root=root, tmp=tmp, backbone=backbone, weights=weights, bank=bank_path, val_ids=val_ids,
                results=json.loads(results.read_text()), predictions=predictions)


def test_build_memory_keeps_every_labelled_patch_of_the_listed_images(real_run):
    bank = MemoryBank.load(real_run["bank"])
    grid = (SIZE // 14) ** 2
    assert bank.metadata["backbone"] == real_run["backbone"] and bank.metadata["input_size"] == SIZE
    assert bank.metadata["pos_embed"] == "official"
    assert bank.features.shape[1] == 384 and 0.5 * TRAIN * grid < len(bank) <= TRAIN * grid
    assert torch.unique(bank.image_index()).numel() == TRAIN
    torch.testing.assert_close(bank.features.norm(dim=1), torch.ones(len(bank)))


def test_cli_evaluate_reports_the_library_numbers(real_run):
    # the CLI's default --precision auto is resolved per machine (bf16 on native-bf16 CPUs) and recorded
    precision = real_run["results"]["config"]["precision"]
    assert precision in ("fp32", "bf16") and MemoryBank.load(real_run["bank"]).metadata["precision"] == precision
    encoder = load_backbone(real_run["backbone"], weights=str(real_run["weights"]), precision=precision)
    features = TokenFeatures(encoder)
    val = load_dataset("voc", real_run["root"], "val", EvalResize(SIZE), fileset=real_run["tmp"] / "val.txt")
    decoder = make_decoder(MemoryBank.load(real_run["bank"]), k=K, index_spec="Flat")
    library = evaluate(features, decoder, val, LoaderOptions(batch_size=8, progress=False))
    cli = real_run["results"]
    assert library["num_images"] == VAL
    assert cli["num_images"] == VAL
    assert cli["mIoU"] == pytest.approx(library["mIoU"], abs=1e-12)
    assert cli["per_class_iou"] == pytest.approx(library["per_class_iou"], abs=1e-12)


def test_saved_predictions_are_palette_pngs_at_each_images_own_size(real_run):
    root = real_run["root"]
    for image_id in real_run["val_ids"]:
        saved = Image.open(real_run["predictions"] / f"{image_id}.png")
        photo = Image.open(next(root.glob(f"**/JPEGImages/{image_id}.jpg")))
        assert saved.mode == "P" and saved.size == photo.size
        assert set(np.unique(np.array(saved))) <= set(range(21))


def test_segment_of_a_real_jpeg_equals_the_evaluations_saved_prediction(real_run):
    root, tmp = real_run["root"], real_run["tmp"]
    photos = [next(root.glob(f"**/JPEGImages/{i}.jpg")) for i in real_run["val_ids"][:2]]
    out_dir = tmp / "segment"
    assert main(["segment", "--bank", str(real_run["bank"]), "--images", *map(str, photos), "--out-dir",
                 str(out_dir), "--resize-mode", "square", "--k", str(K), "--index", "Flat", "--overlay",
                 "--no-progress", "--num-workers", "0", "--device", "cpu"]) == 0
    for photo in photos:
        segmented = np.array(Image.open(out_dir / f"{photo.stem}.png"))
        saved = np.array(Image.open(real_run["predictions"] / f"{photo.stem}.png"))
        assert segmented.shape == saved.shape == Image.open(photo).size[::-1]
        assert (segmented == saved).mean() >= 0.999  # same resize, same decoder: at most float-order ties
        assert Image.open(out_dir / f"{photo.stem}_overlay.png").width >= Image.open(photo).width
    summary = json.loads((out_dir / "summary.json").read_text())
    fractions = summary["class_fractions"][f"{photos[0].stem}.jpg"]
    assert sum(fractions.values()) == pytest.approx(1.0, abs=1e-3)

    aspect_dir = tmp / "segment_aspect"  # the default mode keeps a real photo's aspect ratio
    assert main(["segment", "--bank", str(real_run["bank"]), "--images", str(photos[0]), "--out-dir",
                 str(aspect_dir), "--k", str(K), "--no-progress", "--num-workers", "0", "--device", "cpu"]) == 0
    assert Image.open(aspect_dir / f"{photos[0].stem}.png").size == Image.open(photos[0]).size


def test_neighbours_of_a_real_patch_are_the_memory_patches_that_voted(real_run):
    root, tmp = real_run["root"], real_run["tmp"]
    photo = next(root.glob(f"**/JPEGImages/{real_run['val_ids'][0]}.jpg"))
    out = tmp / "neighbours.png"
    assert main(["neighbours", "--bank", str(real_run["bank"]), "--image", str(photo), "--patch", "8,8",
                 "--resize-mode", "square", "--k", "8", "--index", "Flat", "--out", str(out), "--no-progress",
                 "--num-workers", "0", "--device", "cpu"]) == 0
    assert Image.open(out).width > 0
    shown = json.loads(out.with_suffix(".json").read_text())["neighbours"]
    assert len(shown) == 8
    similarities = [n["similarity"] for n in shown]
    assert similarities == sorted(similarities, reverse=True) and -1 <= similarities[-1] <= similarities[0] <= 1

    # the same patch searched by hand: the bank rows nearest to the query token, in order
    bank = MemoryBank.load(real_run["bank"])
    precision = real_run["results"]["config"]["precision"]  # the CLI's auto precision on this machine
    features = TokenFeatures(load_backbone(real_run["backbone"], weights=str(real_run["weights"]),
                                           precision=precision))
    val = load_dataset("voc", root, "val", EvalResize(SIZE), fileset=tmp / "val.txt")
    assert val[0]["id"] == photo.stem
    token = torch.nn.functional.normalize(features(val[0]["image"][None])[0, 8, 8], dim=0)
    expected = (bank.features.float() @ token).topk(8)
    assert [n["memory_row"] for n in shown] == expected.indices.tolist()
    np.testing.assert_allclose(similarities, expected.values.numpy(), atol=1e-4)
    train_ids = set(_ids(root, "train", TRAIN))
    assert {n["image_id"] for n in shown} <= train_ids
