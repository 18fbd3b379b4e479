"""``--task depth`` on the command line: build-memory → evaluate (JSON, table, plots, saved predictions) →
segment (uint16 millimetre PNGs and colour pictures), the same numbers as the Python API, and one-line
refusals of options, datasets and banks of the other task. On a synthetic RGB-D folder with a random ViT,
and end to end on the real NYU pairs of ../shared with the real weights (skipped without them)."""

import json

import numpy as np
import pytest
from PIL import Image
from realdata import real_nyu, real_weights

from hummingbird import DepthEstimator, Segmenter
from hummingbird.cli.main import main
from hummingbird.datasets.depth import open_depth_dataset

RANDOM = ["--backbone", "dino_vits16", "--weights", "random", "--input-size", "64", "--device", "cpu",
          "--no-progress", "--num-workers", "0"]


@pytest.fixture(scope="module")
def rgbd(tmp_path_factory):
    """A generic RGB-D folder (images/ + depth/ in millimetres with invalid zeros), 6 pairs of 96x64."""
    root = tmp_path_factory.mktemp("rgbd") / "rgbd"
    rng = np.random.default_rng(7)
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    (root / "splits").mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(root / "images" / f"p{i}.png")
        depth = rng.integers(800, 6000, (64, 96)).astype(np.uint16)
        depth[:10, :30] = 0
        Image.fromarray(depth).save(root / "depth" / f"p{i}.png")
    (root / "splits" / "train.txt").write_text("p0\np1\np2\np3\n")
    (root / "splits" / "val.txt").write_text("p4\np5\n")
    return root


@pytest.fixture(scope="module")
def cli_run(rgbd, tmp_path_factory):
    out = tmp_path_factory.mktemp("depth_cli")
    bank = out / "depth.safetensors"
    assert main(["build-memory", "--task", "depth", "--dataset", "folder", "--data-root", str(rgbd), "--out",
                 str(bank), "--depth-encoding", "log-mean", *RANDOM]) == 0
    assert main(["evaluate", "--task", "depth", "--dataset", "folder", "--data-root", str(rgbd), "--bank", str(bank),
                 "--eigen-crop", "none", "--out", str(out / "res.json"), "--plot", "--save-predictions",
                 str(out / "pred"), *RANDOM[6:]]) == 0
    return out, bank, json.loads((out / "res.json").read_text())


def test_evaluate_writes_the_results_file_scripts_read(cli_run, capsys):
    out, _bank, result = cli_run
    keys = {"rmse", "abs_rel", "log10", "delta1", "delta2", "delta3"}
    assert set(result["metrics"]) == set(result["baseline_constant"]) == keys
    assert list(result["per_image"]) == ["p4", "p5"] and result["num_images"] == 2
    settings = result["settings"]
    assert settings["dataset"] == "folder" and settings["split"] == "val" and settings["encoding"] == "log-mean"
    assert settings["metrics"]["eigen_crop"] == "none" and settings["metrics"]["min_depth"] == 0.001
    assert result["bank"]["target_kind"] == "depth" and "image_ids" not in result["bank"]
    for stem in ("res_per_image_rmse", "res_per_image_abs_rel"):
        assert (out / f"{stem}.png").is_file() and (out / f"{stem}.svg").is_file()


def test_the_cli_numbers_are_the_apis(cli_run, rgbd):
    _out, bank, result = cli_run
    est = DepthEstimator.load(bank)
    api = est.evaluate(est.open_dataset("folder", rgbd, "val"), eigen_crop="none")
    assert api["metrics"] == pytest.approx(result["metrics"], abs=1e-12)
    assert api["baseline_constant"] == pytest.approx(result["baseline_constant"], abs=1e-12)


def test_saved_predictions_are_millimetres_with_error_maps(cli_run, rgbd):
    out, bank, _ = cli_run
    est = DepthEstimator.load(bank)
    saved = np.array(Image.open(out / "pred" / "p5.png"))
    assert saved.dtype == np.uint16 and saved.shape == (64, 96)
    expected = np.round(est.predict(rgbd / "images" / "p5.png") * 1000)
    assert np.abs(saved.astype(np.int64) - expected).max() <= 1
    assert Image.open(out / "pred" / "p5_error.png").width > 400


def test_segment_writes_millimetre_pngs_beside_colour_pictures(cli_run, rgbd, tmp_path):
    _out, bank, _ = cli_run
    images = [str(rgbd / "images" / "p4.png"), str(rgbd / "images" / "p5.png")]
    assert main(["segment", "--task", "depth", "--bank", str(bank), "--images", *images, "--out-dir",
                 str(tmp_path), "--no-progress"]) == 0
    depth = np.array(Image.open(tmp_path / "p4.png"))
    assert depth.dtype == np.uint16 and depth.shape == (64, 96) and depth.min() > 0
    prediction = DepthEstimator.load(bank).predict(images[0])
    assert np.abs(depth / 1000 - prediction).max() <= 0.0005 + 1e-6
    colour = Image.open(tmp_path / "p4_colour.png")
    assert colour.mode == "RGB" and colour.height == 64 and colour.width > 2 * 96  # image, depth, scale bar
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["outputs"]["p4.png"] == {"depth_mm": "p4.png", "colour": "p4_colour.png"}
    assert summary["depth_m"]["p4.png"]["min_m"] == pytest.approx(prediction.min(), abs=1e-4)


@pytest.mark.parametrize("argv,message", [
    (["evaluate", "--task", "depth", "--dataset", "voc", "--data-root", "x", "--bank", "b"],
     "--task depth reads RGB-D datasets (nyu, folder), not --dataset voc"),
    (["evaluate", "--dataset", "nyu", "--data-root", "x", "--bank", "b"],
     "--dataset nyu is an RGB-D dataset: add --task depth"),
    (["build-memory", "--dataset", "folder", "--data-root", "x", "--out", "b.safetensors", "--depth-bins", "8"],
     "--depth-bins is a depth option: add --task depth"),
    (["build-memory", "--task", "depth", "--dataset", "nyu", "--data-root", "x", "--out", "b.safetensors",
      "--augmentation-epochs", "2"], "--augmentation-epochs is a segmentation option; --task depth does not use it"),
    (["segment", "--task", "depth", "--bank", "b", "--images", "x", "--out-dir", "o", "--overlay"],
     "--overlay is a segmentation option"),
    (["build-memory", "--task", "depth", "--dataset", "nyu", "--data-root", "x", "--out", "bank_dir"],
     "--out bank_dir: a depth memory is one .safetensors file"),
])
def test_options_of_the_other_task_are_refused_in_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_banks_of_the_other_kind_are_refused_by_segment(cli_run, rgbd, tmp_path, capsys):
    _out, bank, _ = cli_run
    image = str(rgbd / "images" / "p0.png")
    assert main(["segment", "--bank", str(bank), "--images", image, "--out-dir", str(tmp_path), "--no-progress"]) == 2
    assert "a depth memory (a depth target from the patch's valid pixels per row) cannot answer a classes query" in \
        capsys.readouterr().err
    masks = [np.zeros((64, 96), np.uint8), np.ones((64, 96), np.uint8)]
    classes = Segmenter.from_examples([image, str(rgbd / "images" / "p1.png")], masks, backbone="dino_vits16",
                                      weights="random", input_size=64).save(tmp_path / "c.safetensors", with_index=False)
    capsys.readouterr()
    assert main(["segment", "--task", "depth", "--bank", str(classes), "--images", image, "--out-dir",
                 str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "c.safetensors: a classes memory" in err and "cannot answer a depth query" in err and err.count("\n") == 1


def test_eigen_crop_on_other_sizes_and_overwriting_ground_truth_are_refused(cli_run, rgbd, capsys):
    out, bank, _ = cli_run
    common = ["evaluate", "--task", "depth", "--dataset", "folder", "--data-root", str(rgbd), "--bank", str(bank),
              "--out", str(out / "x.json"), "--no-progress"]
    assert main(common) == 2
    assert "p4: the bts Eigen crop is defined for 640x480 NYU depth, this map is 96x64; use --eigen-crop none" in \
        capsys.readouterr().err
    assert main([*common, "--eigen-crop", "none", "--save-predictions", str(rgbd / "depth")]) == 2
    assert "--save-predictions would write over the dataset file" in capsys.readouterr().err
    assert np.array(Image.open(rgbd / "depth" / "p4.png")).dtype == np.uint16  # untouched


# ----------------------------------------------------------------------------- real NYU, real weights

def test_real_nyu_end_to_end(tmp_path, capsys):
    backbone, weights = real_weights()
    root = real_nyu()
    ids = open_depth_dataset("nyu", root, "test").ids
    (tmp_path / "memory.txt").write_text("\n".join(ids[:8]) + "\n")
    (tmp_path / "queries.txt").write_text("\n".join(ids[26:29]) + "\n")
    real = ["--backbone", backbone, "--weights", str(weights), "--input-size", "168", "--device", "cpu",
            "--no-progress"]
    bank = tmp_path / "nyu.safetensors"
    assert main(["build-memory", "--task", "depth", "--dataset", "nyu", "--data-root", str(root), "--split", "test",
                 "--fileset", str(tmp_path / "memory.txt"), "--out", str(bank), *real]) == 0
    assert main(["evaluate", "--task", "depth", "--dataset", "nyu", "--data-root", str(root), "--fileset",
                 str(tmp_path / "queries.txt"), "--bank", str(bank), "--out", str(tmp_path / "res.json"),
                 "--save-predictions", str(tmp_path / "pred"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "RMSE (m) ↓" in printed and "constant = memory-mean depth" in printed
    result = json.loads((tmp_path / "res.json").read_text())
    settings = result["settings"]
    assert settings["split"] == "test" and settings["layout"] == "densedepth"  # --split defaults to test for nyu
    assert settings["metrics"]["eigen_crop_rows_cols"] == [45, 471, 41, 601] and settings["metrics"]["max_depth"] == 10
    assert settings["border"] == [8, 472, 10, 630] and settings["input_shapes_wh"] == ["224x168"]
    assert settings["encoding"] == "log-mean" and settings["memory_overlap"] == 0
    assert list(result["per_image"]) == ids[26:29]
    for key in ("rmse", "abs_rel", "log10", "delta1", "delta2", "delta3"):  # both reported, in plausible ranges
        assert 0 < result["metrics"][key] < 10 and 0 < result["baseline_constant"][key] < 10
    saved = np.array(Image.open(tmp_path / "pred" / f"{ids[26]}.png"))
    assert saved.shape == (480, 640) and saved.dtype == np.uint16 and 500 < np.median(saved) < 10000
    assert np.array_equal(saved[:8], np.repeat(saved[8:9], 8, 0))  # the border replicates the box's edge
    frames = root / "raw_sync" / "rgb"
    assert main(["segment", "--task", "depth", "--bank", str(bank), "--images", str(frames), "--out-dir",
                 str(tmp_path / "seg"), "--border", "nyu", "--no-progress"]) == 0
    depth = np.array(Image.open(tmp_path / "seg" / "rgb_00050.png"))
    assert depth.shape == (480, 640) and depth.min() > 0
