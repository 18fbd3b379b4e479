"""The Python API (``hummingbird.Segmenter``): in-memory examples, the same answers as the command line,
banks that keep their search index."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from hummingbird import Segmenter
from hummingbird.cli.main import main
from hummingbird.errors import ConfigError
from hummingbird.memory.bank import MemoryBank
from hummingbird.memory.search import ClusteredSearch
from hummingbird.memory.search_store import index_folder

RANDOM = {"backbone": "dino_vits16", "weights": "random", "input_size": 64, "k": 5}
QUIET = ["--num-workers", "0", "--no-progress"]


def _pairs(root, ids):
    images = [np.array(Image.open(root / "images" / f"{i}.png")) for i in ids]
    masks = [np.array(Image.open(root / "masks" / f"{i}.png")) for i in ids]
    return images, masks


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    from hummingbird.datasets.synthetic import write_block_dataset

    return write_block_dataset(tmp_path_factory.mktemp("blocks") / "blocks")


@pytest.fixture(scope="module")
def saved(blocks, tmp_path_factory):
    """A segmenter from 8 in-memory examples (numpy arrays), saved; and its bank path."""
    images, masks = _pairs(blocks, [f"img{i:03d}" for i in range(8)])
    segmenter = Segmenter.from_examples(images, masks, class_names=["bg", "red", "green", "blue"], **RANDOM)
    path = segmenter.save(tmp_path_factory.mktemp("bank") / "bank.safetensors")
    return segmenter, path


def test_examples_from_arrays_segment_like_the_cli(saved, blocks, tmp_path):
    segmenter, path = saved
    photo = blocks / "images" / "img010.png"
    labels = segmenter.segment(Image.open(photo))
    truth = np.array(Image.open(blocks / "masks" / "img010.png"))
    assert labels.shape == truth.shape and labels.dtype == np.int64
    assert (labels == truth)[truth != 255].mean() > 0.9
    assert main(["segment", "--bank", str(path), "--images", str(photo), "--out-dir", str(tmp_path), "--k", "5",
                 *QUIET]) == 0
    assert np.array_equal(np.array(Image.open(tmp_path / "img010.png")), labels)
    meta = MemoryBank.load(path).metadata
    assert meta["dataset"] == "memory" and meta["image_ids"][0] == "example_00000"
    assert (path.parent / "bank.safetensors.images" / "example_00007.png").is_file()  # sources saved with the bank


def test_every_image_type_gives_the_same_labels(saved, blocks):
    segmenter, _ = saved
    path = blocks / "images" / "img009.png"
    array = np.array(Image.open(path))
    expected = segmenter.segment(path)
    for image in (Image.open(path), array, torch.from_numpy(array).permute(2, 0, 1),
                  torch.from_numpy(array).permute(2, 0, 1).float() / 255):
        assert np.array_equal(segmenter.segment(image), expected)
    labels, probs = segmenter.segment(array, return_probs=True)
    assert probs.shape == (segmenter.num_classes, *array.shape[:2]) and np.allclose(probs.sum(0), 1, atol=1e-5)
    assert (probs.argmax(0) == labels).mean() > 0.999  # ties aside, the labels are the argmax
    many = segmenter.segment_many([array, array[:48], path], batch_size=2)
    assert np.array_equal(many[0], expected) and np.array_equal(many[2], expected)
    assert np.array_equal(many[1], segmenter.segment(array[:48]))
    with pytest.raises(ConfigError, match="smaller than one 16-px patch"):
        segmenter.segment(array[:8, :8])
    # float arrays are read as float image files are: [0, 1] scaled by 255, [0, 255] as they are
    assert np.array_equal(segmenter.segment(array.astype(np.float64)), expected)
    assert np.array_equal(segmenter.segment(array.astype(np.float32) / 255), expected)
    low, high = 2 * int(array.min()), 2 * int(array.max())
    with pytest.raises(ConfigError, match=rf"image \(float64 array\): float image with values in \[{low}, {high}\], neither"):
        segmenter.segment(array.astype(np.float64) * 2)


def test_load_equals_the_cli_on_evaluate(saved, blocks, tmp_path):
    _, path = saved
    out = tmp_path / "results.json"
    assert main(["evaluate", "--dataset", "folder", "--data-root", str(blocks), "--bank", str(path), "--k", "5",
                 "--out", str(out), *QUIET]) == 0
    cli = json.loads(out.read_text())
    loaded = Segmenter.load(path, k=5)
    api = loaded.evaluate(loaded.open_dataset("folder", blocks, "val"), kind="folder")
    assert api["confusion_matrix"] == cli["confusion_matrix"] and api["mIoU"] == cli["mIoU"] >= 0.9
    assert api["config"] == cli["config"] and api["bank"] == cli["bank"]
    images, masks = _pairs(blocks, [f"img{i:03d}" for i in range(8, 12)])
    assert loaded.evaluate(images, masks)["confusion_matrix"] == cli["confusion_matrix"]


def test_neighbours_and_their_figure_match_the_cli(saved, blocks, tmp_path):
    segmenter, path = saved
    photo = blocks / "images" / "img011.png"
    nearest = segmenter.neighbours(photo, point=(40, 20), k=4)
    assert len(nearest) == 4 and all(-1.001 <= n.similarity <= 1.001 for n in nearest)
    assert [n.similarity for n in nearest] == sorted((n.similarity for n in nearest), reverse=True)
    assert all(n.image_id.startswith("example_") and len(n.box) == 4 for n in nearest)
    figure = segmenter.neighbours_figure(photo, point=(40, 20), k=4)
    out = tmp_path / "n.png"
    assert main(["neighbours", "--bank", str(path), "--image", str(photo), "--point", "40,20", "--k", "4", "--decoder-k", "5",
                 "--out", str(out), *QUIET]) == 0
    assert np.array_equal(np.array(Image.open(out)), np.array(figure))  # the in-memory sources = the saved ones
    recorded = json.loads(out.with_suffix(".json").read_text())["neighbours"]
    assert [r["memory_row"] for r in recorded] == [n.memory_row for n in nearest]
    with pytest.raises(ConfigError, match="exactly one of point"):
        segmenter.neighbours(photo)


def test_clustered_index_is_stored_reused_extended_and_rebuilt_when_stale(blocks, tmp_path, capsys):
    images, masks = _pairs(blocks, [f"img{i:03d}" for i in range(6)])
    segmenter = Segmenter.from_examples(images, masks, **dict(RANDOM, index="clustered"))
    path = segmenter.save(tmp_path / "bank.safetensors")
    stored = index_folder(path) / "clustered-seed0.safetensors"
    assert stored.is_file() and capsys.readouterr().err == ""  # library calls are quiet unless asked
    smaller = Segmenter.from_examples(images[:3], masks[:3], **dict(RANDOM, index="clustered", progress=True))
    smaller.save(tmp_path / "small.safetensors")
    assert "training the clustered search" in capsys.readouterr().err
    loaded = Segmenter.load(path, index="clustered", k=5, progress=True)
    photo = blocks / "images" / "img010.png"
    assert np.array_equal(loaded.segment(photo), segmenter.segment(photo))
    assert "search" not in capsys.readouterr().err  # read, not trained
    index = loaded.decoder().index
    assert isinstance(index, ClusteredSearch) and torch.equal(index.centroids, segmenter.decoder().index.centroids)
    centroids, rows = index.centroids.clone(), len(index)
    more_images, more_masks = _pairs(blocks, ["img006", "img007"])
    loaded.add(more_images, more_masks)
    assert len(loaded.decoder().index) == len(loaded.bank) > rows
    assert torch.equal(loaded.decoder().index.centroids, centroids)  # grown, not re-trained
    assert loaded.bank.metadata["image_ids"][-2:] == ["example_00006", "example_00007"]
    loaded.save(path)  # the grown bank and its grown index
    assert "search" not in capsys.readouterr().err
    again = Segmenter.load(path, index="clustered", k=5, progress=True)
    assert len(again.decoder().index) == len(again.bank) and "search" not in capsys.readouterr().err
    smaller.save(path, with_index=False)  # the bank changes, its stored index does not
    Segmenter.load(path, index="clustered", k=5, progress=True).decoder()
    assert f"search index {stored} is stale" in capsys.readouterr().err


def test_trained_faiss_index_is_stored(saved, tmp_path, capsys):
    segmenter, _ = saved
    bank = segmenter.memory_bank()
    bank = MemoryBank(bank.features, bank.labels, bank.sources, bank.views, dict(bank.metadata))
    path = tmp_path / "ivf.safetensors"
    Segmenter(bank, segmenter.pipeline, bank_path=None).save(path)
    first = Segmenter.load(path, index="IVF4,Flat", nprobe=4, progress=True)
    photo = np.zeros((64, 64, 3), np.uint8)
    labels = first.segment(photo)
    assert "training the IVF4,Flat search" in capsys.readouterr().err
    second = Segmenter.load(path, index="IVF4,Flat", nprobe=4, progress=True)
    assert np.array_equal(second.segment(photo), labels) and "search" not in capsys.readouterr().err


def test_importing_hummingbird_stays_light():
    code = ("import sys, hummingbird; print(sorted(m for m in ('torch', 'timm', 'faiss', 'numpy') if m in sys.modules)); "
            "print(hummingbird.Segmenter.__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["[]", "hummingbird.segmenter"]


def test_a_dataset_bank_grown_from_python_shows_both_kinds_of_sources(blocks, tmp_path):
    bank = tmp_path / "folder.safetensors"
    assert main(["build-memory", "--dataset", "folder", "--data-root", str(blocks), "--split", "train",
                 "--backbone", "dino_vits16", "--weights", "random", "--input-size", "64", "--no-augment",
                 "--out", str(bank), *QUIET]) == 0
    segmenter = Segmenter.load(bank, k=5)
    before = len(segmenter.bank)
    images, masks = _pairs(blocks, ["img010", "img011"])
    segmenter.add(images, masks)
    assert len(segmenter.bank) > before and segmenter.bank.metadata["num_images"] == 10
    nearest = segmenter.neighbours(images[0], patch=(1, 1), k=3)
    assert nearest[0].image_id == "example_00008" and nearest[0].similarity > 0.999  # the added image itself
    assert segmenter.neighbours_figure(images[0], patch=(1, 1), k=3).width > 0  # dataset and added sources open


def test_fungi_features_through_the_same_options(blocks, tmp_path):
    images, masks = _pairs(blocks, ["img000", "img001", "img002", "img003"])
    support = tmp_path / "support.safetensors"
    segmenter = Segmenter.from_examples(images, masks, features="fungi", fungi_support=str(support), **RANDOM)
    assert support.is_file() and segmenter.bank.metadata["feature_kind"] == "fungi" and segmenter.bank.dim == 768
    photo = np.array(Image.open(blocks / "images" / "img010.png"))
    path = segmenter.save(tmp_path / "fungi.safetensors")
    assert np.array_equal(Segmenter.load(path, k=5).segment(photo), segmenter.segment(photo))  # the bank's support
