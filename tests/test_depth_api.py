"""The depth API (``hummingbird.DepthEstimator``): memories of valid-pixel targets, predictions in metres at the
image's size, the save/load round trip, evaluation against the constant baseline, the alignment of features,
targets, upsampling and metrics (a query's own patches in memory with k = 1 give back its patch targets), and
banks of one target kind refused as another, both ways."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from realdata import real_nyu, real_weights

from hummingbird import DepthEstimator, Segmenter
from hummingbird.datasets.depth import NYU_CONTENT_BOX, open_depth_dataset
from hummingbird.errors import BankError, ConfigError, HummingbirdWarning
from hummingbird.evaluation.depth_metrics import METRIC_NAMES, DepthMetricOptions, depth_metrics
from hummingbird.memory.bank import MemoryBank

RANDOM = {"backbone": "dino_vits16", "weights": "random", "input_size": 64, "device": "cpu"}


def noise_images(n, size=(96, 64), seed=0):
    """Noise photos (every patch distinct) and depth maps with a NaN block and a zero block (invalid)."""
    rng = np.random.default_rng(seed)
    images, depths = [], []
    for i in range(n):
        images.append(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        depth = rng.uniform(1.0, 6.0, (size[1], size[0]))
        depth[:16, :16] = np.nan  # one whole 16-px patch without a valid pixel
        depth[40:, 60:70] = 0.0
        depths.append(depth)
    return images, depths


def loop_patch_means(depth, valid, grid):
    h, w = grid
    sums, counts = np.zeros(grid), np.zeros(grid)
    rows = np.arange(depth.shape[0]) * h // depth.shape[0]
    cols = np.arange(depth.shape[1]) * w // depth.shape[1]
    np.add.at(sums, (rows[:, None].repeat(depth.shape[1], 1)[valid], cols[None].repeat(depth.shape[0], 0)[valid]),
              depth[valid])
    np.add.at(counts, (rows[:, None].repeat(depth.shape[1], 1)[valid], cols[None].repeat(depth.shape[0], 0)[valid]), 1)
    return sums / np.maximum(counts, 1), counts > 0


@pytest.fixture(scope="module")
def estimator():
    images, depths = noise_images(4)
    return DepthEstimator.from_examples(images, depths, encoding="mean", k=1, **RANDOM), images, depths


def test_memory_rows_are_the_patches_with_a_valid_pixel(estimator):
    est, _images, depths = estimator
    grid = (4, 6)  # 64x96 at short side 64 with /16 patches
    expected_rows, means = 0, []
    for depth in depths:
        valid = np.isfinite(depth) & (depth > 0)
        mean, ok = loop_patch_means(np.nan_to_num(depth), valid, grid)
        expected_rows += int(ok.sum())
        means += list(mean[ok])
    assert not ok[0, 0] and len(est.bank) == expected_rows == 4 * 24 - 4
    torch.testing.assert_close(est.bank.labels[:, 0].double(), torch.tensor(means), rtol=1e-5, atol=0)
    meta = est.bank.metadata
    assert meta["target_kind"] == "depth" and meta["depth_encoding"] == {"name": "mean"}
    assert meta["memory_mean_depth"] == pytest.approx(np.mean(means))
    assert est.memory_mean_depth == pytest.approx(np.mean(means)) and meta["input_size"] == 64


def test_own_patches_with_k1_give_back_the_patch_targets_upsampled(estimator):
    """The ceiling of any patch decoder: features, target rows, upsampling and metrics line up."""
    est, images, depths = estimator
    depth = est.predict(images[2])
    assert depth.shape == (64, 96) and depth.dtype == np.float32
    valid = np.isfinite(depths[2]) & (depths[2] > 0)
    mean, ok = loop_patch_means(np.nan_to_num(depths[2]), valid, (4, 6))
    grid = torch.from_numpy(mean).float()
    grid[~torch.from_numpy(ok)] = float(depth[:16, :16].mean())  # the invalid patch's answer is its neighbour's
    expected = torch.nn.functional.interpolate(grid[None, None], size=(64, 96), mode="bilinear",
                                               align_corners=False)[0, 0].numpy()
    inside = np.ones_like(valid)
    inside[:24, :24] = False  # pixels the invalid patch's value reaches by interpolation
    np.testing.assert_allclose(depth[inside], expected[inside], rtol=1e-5)
    result = est.evaluate(images[1:3], depths[1:3], eigen_crop="none")
    ceiling = depth_metrics(depth, np.nan_to_num(depths[2]), valid, DepthMetricOptions("none"))
    assert result["per_image"]["example_00001"]["metrics"]["rmse"] == pytest.approx(ceiling["rmse"], rel=1e-6)
    assert result["metrics"]["rmse"] < result["baseline_constant"]["rmse"]  # its own patches: better than constant


def test_predictions_are_metres_at_the_images_own_size(estimator):
    est, images, _ = estimator
    odd = Image.fromarray(images[0]).resize((71, 45))
    depth = est.predict(odd)
    assert depth.shape == (45, 71) and np.isfinite(depth).all() and depth.min() > 0
    lo, hi = est.bank.labels.min().item(), est.bank.labels.max().item()
    assert lo - 1e-5 <= depth.min() and depth.max() <= hi + 1e-5  # convex combinations of memory depths
    with pytest.raises(ConfigError, match="smaller than one 16-px patch"):
        est.predict(np.zeros((8, 40, 3), np.uint8))


def test_save_and_load_give_the_same_predictions(estimator, tmp_path):
    est, images, _ = estimator
    path = est.save(tmp_path / "depth.safetensors")
    again = DepthEstimator.load(path, k=1)
    assert again.encoding == est.encoding and again.input_size == 64 and again.search.k == 1
    np.testing.assert_array_equal(again.predict(images[3]), est.predict(images[3]))
    assert MemoryBank.load(path).metadata["target_kind"] == "depth"


def test_evaluate_reports_both_and_the_constant_is_the_memory_mean(estimator):
    est, images, depths = estimator
    result = est.evaluate(images[:2], depths[:2], eigen_crop="none", max_depth=5.0)
    assert set(result["metrics"]) == set(result["baseline_constant"]) == set(METRIC_NAMES)
    assert result["num_images"] == 2 and list(result["per_image"]) == ["example_00000", "example_00001"]
    valid = np.isfinite(depths[0]) & (depths[0] > 0)
    constant = depth_metrics(np.full((64, 96), est.memory_mean_depth), np.nan_to_num(depths[0]), valid,
                             DepthMetricOptions("none", max_depth=5.0))
    assert result["per_image"]["example_00000"]["baseline_constant"] == pytest.approx(constant)
    settings = result["settings"]
    assert settings["metrics"]["max_depth"] == 5.0 and settings["metrics"]["eigen_crop"] == "none"
    assert settings["encoding"] == "mean" and settings["k"] == 1 and settings["input_shapes_wh"] == ["96x64"]
    assert result["metrics_pixel_pooled"]["rmse"] > 0


def test_bins_memory_spans_the_memory_depths_and_survives_the_round_trip(tmp_path):
    images, depths = noise_images(2, seed=3)
    est = DepthEstimator.from_examples(images, depths, encoding="bins", bins=16, bin_decode="expectation", **RANDOM)
    record = est.bank.metadata["depth_encoding"]
    assert record["bins"] == 16 and est.bank.labels.shape[1] == 16
    finite = np.concatenate([d[np.isfinite(d) & (d > 0)] for d in depths])
    assert record["low"] == pytest.approx(finite.min(), rel=1e-6) and record["high"] == pytest.approx(finite.max(), rel=1e-6)
    torch.testing.assert_close(est.bank.labels.sum(1), torch.ones(len(est.bank)))
    again = DepthEstimator.load(est.save(tmp_path / "bins.safetensors"))
    np.testing.assert_array_equal(again.predict(images[0]), est.predict(images[0]))


def test_memory_size_keeps_that_many_patches_per_image():
    images, depths = noise_images(3, seed=4)
    est = DepthEstimator.from_examples(images, depths, memory_size=30, **RANDOM)
    assert len(est.bank) == 30 and torch.bincount(est.bank.image_index()).tolist() == [10, 10, 10]


def test_a_bank_of_another_kind_is_refused_both_ways(estimator, tmp_path):
    est, images, _ = estimator
    depth_bank = est.save(tmp_path / "depth.safetensors")
    with pytest.raises(BankError, match=r"depth.safetensors: a depth memory .* cannot answer a classes query") as e:
        Segmenter.load(depth_bank)
    assert "\n" not in str(e.value)
    masks = [np.zeros((64, 96), np.uint8), np.ones((64, 96), np.uint8)]
    classes = Segmenter.from_examples(images[:2], masks, backbone="dino_vits16", weights="random", input_size=64)
    class_bank = classes.save(tmp_path / "classes.safetensors", with_index=False)
    with pytest.raises(BankError, match=r"classes.safetensors: a classes memory \(a class distribution \(C,\) per "
                                        r"row\) cannot answer a depth query") as e:
        DepthEstimator.load(class_bank)
    assert "\n" not in str(e.value)


def test_depth_options_that_cannot_work_are_refused():
    images, depths = noise_images(1)
    with pytest.raises(ConfigError, match="--features fungi: depth memories are built from tokens features"):
        DepthEstimator.from_examples(images, depths, features="fungi", **RANDOM)
    with pytest.raises(ConfigError, match="--protocol-preset open-hbird: a segmentation preset"):
        DepthEstimator.from_examples(images, depths, protocol_preset="open-hbird", **RANDOM)


# ----------------------------------------------------------------------------- real NYU pairs, real weights

def test_real_nyu_own_patches_give_the_ceiling_through_border_and_eigen_crop(tmp_path):
    """Real frames with their white border: the model sees the 464x620 box at 224x168 (12x16 patches); with
    k = 1 over the frames' own patches each prediction is its ground-truth patch means, upsampled to the box
    and replicated over the border, scored in the BTS Eigen crop."""
    backbone, weights = real_weights()
    root = real_nyu()
    ids = open_depth_dataset("nyu", root, "test").ids[:3]
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    est = DepthEstimator.from_dataset("nyu", root, "test", fileset=tmp_path / "ids.txt", encoding="mean", k=1,
                                      backbone=backbone, weights=str(weights), input_size=168, device="cpu",
                                      progress=False)
    assert len(est.bank) == 3 * 12 * 16
    dataset = est.open_dataset("nyu", root, "test", fileset=tmp_path / "ids.txt")
    with pytest.warns(HummingbirdWarning, match="3 of the 3 evaluated images are in the memory"):
        result = est.evaluate(dataset)
    top, bottom, left, right = NYU_CONTENT_BOX
    for i, sample_id in enumerate(ids):
        sample = dataset[i]
        box = sample.depth[top:bottom, left:right]
        mean, _ = loop_patch_means(box, box > 0, (12, 16))
        up = torch.nn.functional.interpolate(torch.from_numpy(mean).float()[None, None], size=box.shape,
                                             mode="bilinear", align_corners=False)[0, 0]
        full = np.pad(up.numpy(), ((top, 480 - bottom), (left, 640 - right)), mode="edge")
        expected = depth_metrics(full, sample.depth, sample.valid)
        for key in METRIC_NAMES:
            assert result["per_image"][sample_id]["metrics"][key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7)
    assert result["metrics"]["rmse"] < 0.2 < result["baseline_constant"]["rmse"]
    assert result["settings"]["border"] == [8, 472, 10, 630] and result["settings"]["input_shapes_wh"] == ["224x168"]
    assert math.isclose(result["settings"]["metrics"]["max_depth"], 10.0)
