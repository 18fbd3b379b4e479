"""Depth metrics: hand-computed cases, an independent pixel-by-pixel implementation, the NYUv2 conventions
(Eigen crops, depth range, clipping, per-image averaging) and their one-line refusals."""

import math

import numpy as np
import pytest

from hummingbird.catalog import EIGEN_CROP_NAMES
from hummingbird.errors import ConfigError, DatasetError
from hummingbird.evaluation.depth_metrics import (
    EIGEN_CROPS,
    METRIC_NAMES,
    DepthMetricOptions,
    DepthScores,
    depth_metrics,
    format_depth_scores,
)

NO_CROP = DepthMetricOptions(eigen_crop="none")


def naive(pred, gt, valid=None, crop=None, low=1e-3, high=10.0):
    """A deliberately plain re-implementation: one pixel at a time, every rule spelled out."""
    n, sq, rel, l10, d = 0, 0.0, 0.0, 0.0, [0, 0, 0]
    for r in range(gt.shape[0]):
        for c in range(gt.shape[1]):
            g = float(gt[r, c])
            if valid is not None and not valid[r, c]:
                continue
            if crop is not None and not (crop[0] <= r < crop[1] and crop[2] <= c < crop[3]):
                continue
            if not (low < g < high):
                continue
            p = float(pred[r, c])
            p = low if math.isnan(p) else min(max(p, low), high)
            n += 1
            sq += (g - p) ** 2
            rel += abs(g - p) / g
            l10 += abs(math.log10(g) - math.log10(p))
            for i, t in enumerate((1.25, 1.25 ** 2, 1.25 ** 3)):
                d[i] += max(g / p, p / g) < t
    return {"rmse": math.sqrt(sq / n), "abs_rel": rel / n, "log10": l10 / n,
            "delta1": d[0] / n, "delta2": d[1] / n, "delta3": d[2] / n}


def test_two_pixels_by_hand():
    m = depth_metrics(np.array([[1.0, 4.0]]), np.array([[2.0, 4.0]]), options=NO_CROP)
    assert m["rmse"] == pytest.approx(math.sqrt(0.5))  # sqrt((1² + 0²) / 2)
    assert m["abs_rel"] == pytest.approx(0.25)  # (1/2 + 0) / 2
    assert m["log10"] == pytest.approx(math.log10(2) / 2)
    assert (m["delta1"], m["delta2"], m["delta3"]) == (0.5, 0.5, 0.5)  # ratio 2 ≥ 1.953125


def test_delta_thresholds_count_over_and_under_prediction_alike():
    gt = np.ones((1, 4))
    pred = np.array([[1.2, 1.5, 1.9, 2.0]])  # ratios 1.2 | 1.5 | 1.9 | 2.0
    for p in (pred, 1 / pred):
        m = depth_metrics(p, gt, options=NO_CROP)
        assert (m["delta1"], m["delta2"], m["delta3"]) == (0.25, 0.5, 0.75)


def test_a_scaled_prediction():
    gt = np.random.default_rng(0).uniform(0.7, 9.0, (30, 40))
    m = depth_metrics(gt * 1.1, gt, options=DepthMetricOptions("none", max_depth=100))
    assert m["abs_rel"] == pytest.approx(0.1) and m["log10"] == pytest.approx(math.log10(1.1))
    assert m["delta1"] == 1.0 and m["rmse"] == pytest.approx(0.1 * math.sqrt(np.mean(gt ** 2)))
    perfect = depth_metrics(gt, gt, options=NO_CROP)
    assert perfect == {"rmse": 0.0, "abs_rel": 0.0, "log10": 0.0, "delta1": 1.0, "delta2": 1.0, "delta3": 1.0}


@pytest.mark.parametrize("crop", EIGEN_CROP_NAMES)
def test_nyu_maps_agree_with_the_naive_implementation(crop):
    rng = np.random.default_rng(1)
    gt = rng.uniform(0.5, 11.0, (480, 640))  # some above the 10 m maximum
    gt[rng.random(gt.shape) < 0.2] = 0  # invalid (raw Kinect zeros)
    pred = gt * rng.uniform(0.6, 1.5, gt.shape) + rng.normal(0, 0.1, gt.shape)
    pred[0, 0], pred[100, 100], pred[200, 200] = np.nan, np.inf, -3.0  # clipped like BTS
    valid = rng.random(gt.shape) > 0.05
    ours = depth_metrics(pred, gt, valid, DepthMetricOptions(crop))
    reference = naive(pred[::1], gt, valid, EIGEN_CROPS[crop])
    for key in METRIC_NAMES:
        assert ours[key] == pytest.approx(reference[key], rel=1e-9, abs=1e-12), key


def test_dataset_numbers_are_the_mean_of_per_image_metrics_not_pooled_pixels():
    scores = DepthScores(NO_CROP)
    a = scores.update("a", np.full((2, 2), 2.0), np.full((2, 2), 1.0))  # every pixel off by 1 m
    b = scores.update("b", np.ones((4, 4)), np.ones((4, 4)))  # perfect, 4x the pixels
    assert a["rmse"] == 1.0 and b["rmse"] == 0.0
    assert scores.result()["rmse"] == 0.5  # (1 + 0) / 2: each image counts once
    assert scores.result(pooled=True)["rmse"] == pytest.approx(math.sqrt(4 / 20))  # 4 of 20 pixels off by 1
    assert scores.pixels == {"a": 4, "b": 16} and list(scores.per_image) == ["a", "b"]


def test_range_and_valid_mask_choose_the_scored_pixels():
    gt = np.array([[0.0, 0.0005, 2.0, 10.0, 12.0, 3.0]])
    pred = np.full_like(gt, 2.0)
    m = depth_metrics(pred, gt, np.array([[1, 1, 1, 1, 1, 0]], bool), NO_CROP)
    assert m["rmse"] == 0.0  # only gt = 2.0 is scored: 0 and 5e-4 too small, 10 and 12 not < 10, 3.0 invalid
    m = depth_metrics(pred, gt, options=DepthMetricOptions("none", max_depth=20))
    assert m["rmse"] == pytest.approx(math.sqrt((0 + 64 + 100 + 1) / 4))


def test_the_eigen_crop_needs_a_640x480_map_and_says_so():
    with pytest.raises(ConfigError, match=r"^img7: the bts Eigen crop is defined for 640x480 NYU depth, this map is "
                                          r"40x30; use --eigen-crop none$"):
        depth_metrics(np.ones((30, 40)), np.ones((30, 40)), name="img7")
    gt = np.zeros((480, 640))
    gt[:40] = 2.0  # valid depth only above the crop
    with pytest.raises(DatasetError, match=r"^x: no pixel to score .* inside the Eigen crop\)$"):
        depth_metrics(np.ones_like(gt), gt, name="x")


def test_options_are_checked_and_named_in_results():
    with pytest.raises(ConfigError, match="--eigen-crop kitti: use one of bts, densedepth, none"):
        DepthMetricOptions("kitti")
    with pytest.raises(ConfigError, match="need 0 <= min < max"):
        DepthMetricOptions(min_depth=5, max_depth=2)
    described = DepthMetricOptions().describe()
    assert described["eigen_crop"] == "bts" and described["eigen_crop_rows_cols"] == [45, 471, 41, 601]
    assert described["max_depth"] == 10.0 and "mean over images" in described["averaging"]
    assert tuple(EIGEN_CROPS) == EIGEN_CROP_NAMES


def test_the_table_says_which_is_better_per_metric():
    result = {"metrics": {"rmse": 1.0, "abs_rel": 0.2, "log10": 0.1, "delta1": 0.5, "delta2": 0.7, "delta3": 0.9},
              "baseline_constant": {"rmse": 1.2, "abs_rel": 0.1, "log10": 0.1, "delta1": 0.6, "delta2": 0.6,
                                    "delta3": 0.9}, "num_images": 3, "settings": {"memory_mean_depth": 2.5}}
    lines = format_depth_scores(result).splitlines()
    assert lines[1].split()[-1] == "decoder" and lines[2].split()[-1] == "constant"  # RMSE lower, AbsRel higher
    assert lines[4].split()[-1] == "constant" and lines[5].split()[-1] == "decoder"  # δ1 lower, δ2 higher
    assert "memory-mean depth 2.500 m" in lines[-1]
