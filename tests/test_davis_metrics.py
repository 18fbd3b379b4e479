"""J&F as the official DAVIS-2017 evaluation computes it: the published OSVOS predictions of ../shared score
the official toolkit's own numbers (within 1e-4 per sequence), and the metric's invariants hold on synthetic
masks (perfect prediction J = F = 1, empty prediction J = 0, boundary tolerance of 8 px at 854x480, decay
bins, void pixels, object ids)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from realdata import SHARED, real_davis

from hummingbird.datasets.davis import DavisDataset
from hummingbird.errors import DatasetError
from hummingbird.evaluation.davis_metrics import (
    DavisScores,
    boundary_map,
    boundary_measure,
    dilate_disk,
    region_similarity,
    sequence_scores,
    statistics,
)
from hummingbird.tasks.video import score_predictions

KEYS = {"J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay", "JF_mean"}


def _official():
    path = SHARED / "davis" / "reference" / "osvos_official_eval.json"
    if not path.is_file():
        pytest.skip("no official OSVOS evaluation: add ../shared/davis/reference/")
    return json.loads(path.read_text())["per_object"], path.parent / "osvos"


def test_osvos_predictions_score_the_official_numbers():
    official, predictions = _official()
    result = score_predictions(DavisDataset(real_davis()), predictions)
    assert set(result) == {"per_sequence", "global", "settings"}
    for name, expected in official.items():
        seq = name.rsplit("_", 1)[0]
        assert set(result["per_sequence"][seq]) == KEYS
        for key, value in expected.items():
            assert abs(result["per_sequence"][seq][key] - value) < 1e-4, (seq, key)
    means = [official[n] for n in official]
    assert abs(result["global"]["J_mean"] - np.mean([m["J_mean"] for m in means])) < 1e-4
    assert abs(result["global"]["JF_mean"] - (result["global"]["J_mean"] + result["global"]["F_mean"]) / 2) < 1e-12


def _disc(h, w, cy, cx, r):
    y, x = np.mgrid[:h, :w]
    return (y - cy) ** 2 + (x - cx) ** 2 <= r * r


def test_perfect_and_empty_predictions():
    gt = np.stack([_disc(60, 90, 30, 40 + t, 15) for t in range(6)]).astype(np.uint8)
    j, f = sequence_scores(gt, gt.copy())
    assert j.shape == f.shape == (1, 4) and (j == 1).all() and (f == 1).all()
    j, f = sequence_scores(gt, np.zeros_like(gt))
    assert (j == 0).all() and (f == 0).all()
    scores = DavisScores()
    scores.add("s", gt, gt.copy())
    assert scores.global_scores() == {"J_mean": 1.0, "J_recall": 1.0, "J_decay": 0.0, "F_mean": 1.0,
                                      "F_recall": 1.0, "F_decay": 0.0, "JF_mean": 1.0}


def test_region_similarity_is_iou_without_void():
    gt, pred = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    gt[:2] = True
    pred[1:3] = True
    assert region_similarity(gt, pred) == pytest.approx(4 / 12)
    void = np.zeros((4, 4), bool)
    void[2] = True  # the false-positive row is void
    assert region_similarity(gt, pred, void) == pytest.approx(4 / 8)
    assert region_similarity(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0


def test_boundary_pixels_and_disk_dilation():
    seg = np.zeros((6, 6), bool)
    seg[2:4, 2:4] = True
    b = boundary_map(seg)
    assert b.sum() > 0 and not b[-1, -1]
    # a pixel differing from its east, south or south-east neighbour: (1, 1) outside the square is one, the
    # square's top-left (2, 2) is not (its three neighbours are in the square too)
    assert b[1, 1] and b[3, 3] and b[2, 3] and not b[2, 2] and not b[4, 4]
    point = np.zeros((21, 21), bool)
    point[10, 10] = True
    disk = dilate_disk(point, 8)
    y, x = np.mgrid[:21, :21]
    np.testing.assert_array_equal(disk, (y - 10) ** 2 + (x - 10) ** 2 <= 64)
    corner = np.zeros((5, 5), bool)
    corner[0, 0] = True
    np.testing.assert_array_equal(dilate_disk(corner, 2), (y[:5, :5] ** 2 + x[:5, :5] ** 2) <= 4)


def test_boundary_tolerance_is_eight_pixels_at_480p():
    gt = np.zeros((480, 854), bool)
    gt[100:300, 200:500] = True
    for shift, matched in ((8, True), (9, False)):
        pred = np.roll(gt, shift, axis=1)
        f = boundary_measure(gt, pred)
        assert (f > 0.99) if matched else (f < 0.9), (shift, f)
    assert math.ceil(0.008 * math.hypot(480, 854)) == 8


def test_statistics_recall_and_decay_bins():
    mean, recall, decay = statistics([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert mean == 3 / 8 and recall == 3 / 8
    # 8 frames: bins [0:3], [2:5], [4:7], [6:8] (np.round(linspace(1, 8, 5)) - 1 = 0, 2, 4, 6, 7)
    assert decay == pytest.approx(1.0 - 0.0)
    assert statistics([0.6, 0.4])[1] == 0.5


def test_objects_void_and_bad_predictions():
    gt = np.zeros((5, 20, 20), np.uint8)
    gt[:, 2:8, 2:8] = 1
    gt[:, 10:16, 10:16] = 2
    pred = gt.copy()
    pred[:, 10:16, 10:16] = 0  # object 2 never predicted
    j, _ = sequence_scores(gt, pred)
    assert (j[0] == 1).all() and (j[1] == 0).all()
    with pytest.raises(DatasetError, match="object id 3"):
        sequence_scores(gt, np.full_like(gt, 3))
    with pytest.raises(DatasetError, match="at least 3"):
        sequence_scores(gt[:2], gt[:2])
    void = np.zeros(gt.shape, bool)
    void[:, 10:16, 10:16] = True  # object 2 is void everywhere: both empty, J = 1
    j, _ = sequence_scores(np.where(void, 255, gt), pred, void)
    assert len(j) == 1 and (j == 1).all()
