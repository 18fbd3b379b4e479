"""Depth targets of memory rows: computed from the valid pixels only, on a patch grid laid over the map's own
resolution; the three encodings, their decoding to metres, and the way back to pixels."""

import math

import numpy as np
import pytest
import torch

from hummingbird.catalog import DEFAULT_DEPTH_ENCODING, DEPTH_ENCODINGS
from hummingbird.errors import ConfigError
from hummingbird.memory.depth_targets import (
    ENCODINGS,
    DepthEncoding,
    fill_frame,
    patch_index,
    patch_mean_depth,
    upsample_depth,
)


def loop_patch_stats(depth, valid, grid, reduce):
    """Per-patch ``reduce`` of the valid pixels, one pixel at a time (independent of the bincount code)."""
    h, w = grid
    height, width = depth.shape
    groups = {}
    for r in range(height):
        for c in range(width):
            if valid[r, c]:
                groups.setdefault((r * h // height, c * w // width), []).append(float(depth[r, c]))
    return {key: reduce(values) for key, values in groups.items()}


def test_targets_come_from_valid_pixels_only():
    depth = torch.tensor([[1.0, 3.0, 9.0, 9.0],
                          [5.0, 0.0, 9.0, 9.0],
                          [2.0, 2.0, 0.0, 0.0],
                          [2.0, 2.0, 0.0, 0.0]])
    valid = depth > 0
    valid[0, 2:] = False  # 9 m readings marked invalid: they must not count
    valid[1, 2:] = False
    mean, ok = patch_mean_depth(depth, valid, grid=(2, 2))
    assert ok.tolist() == [[[True, False], [True, False]]]  # the right column has no valid pixel
    assert mean[0].tolist() == [[3.0, 0.0], [2.0, 0.0]]  # (1 + 3 + 5) / 3; the zero is not a reading
    targets, ok2 = DepthEncoding("log-mean").targets(depth, valid, grid=(2, 2))
    assert torch.equal(ok, ok2) and targets.shape == (1, 2, 2, 1)
    assert targets[0, 0, 0, 0].item() == pytest.approx((math.log(1) + math.log(3) + math.log(5)) / 3)


def test_nan_and_negative_depths_are_invalid_without_a_mask():
    depth = torch.tensor([[2.0, float("nan")], [-1.0, 4.0]])
    mean, ok = patch_mean_depth(depth, grid=(1, 1))
    assert ok.item() and mean.item() == 3.0


@pytest.mark.parametrize("shape,grid", [((464, 620), (24, 32)), ((37, 53), (5, 7)), ((28, 42), (2, 3))])
def test_grid_laid_over_a_map_of_any_size_matches_a_pixel_loop(shape, grid):
    rng = np.random.default_rng(sum(shape))
    depth = rng.uniform(0.7, 9.0, shape).astype(np.float32)
    valid = rng.random(shape) > 0.3
    valid[: shape[0] // grid[0] + 1, : shape[1] // grid[1] + 1] = False  # the first patch has no valid pixel
    mean, ok = patch_mean_depth(torch.from_numpy(depth), torch.from_numpy(valid), grid=grid)
    expected = loop_patch_stats(depth, valid, grid, np.mean)
    assert not ok[0, 0, 0] and int(ok.sum()) == len(expected)
    for (i, j), value in expected.items():
        assert mean[0, i, j].item() == pytest.approx(value, rel=1e-5)
    index = patch_index(*shape, grid)
    assert index.shape == shape and index.max().item() == grid[0] * grid[1] - 1
    assert len(torch.unique(index)) == grid[0] * grid[1]  # every patch owns pixels


def test_bins_are_a_distribution_whose_decodings_bracket_mean_and_log_mean():
    rng = np.random.default_rng(4)
    depth = torch.from_numpy(rng.uniform(0.8, 8.0, (2, 32, 48)).astype(np.float32))
    grid = (4, 6)
    fine = DepthEncoding("bins", 512, decode="expectation").with_range(0.8, 8.0)
    hist, ok = fine.targets(depth, grid=grid)
    assert hist.shape == (2, 4, 6, 512) and ok.all()
    torch.testing.assert_close(hist.sum(-1), torch.ones(2, 4, 6))
    mean = DepthEncoding("mean").targets(depth, grid=grid)[0][..., 0]
    log_mean = DepthEncoding("log-mean").targets(depth, grid=grid)[0][..., 0]
    # expectation over fine bins = the mean up to quantisation (half a bin: ratio 10 ** (1 / 512) / 2)
    torch.testing.assert_close(fine.to_metres(hist), mean, rtol=3e-3, atol=0)
    geometric = DepthEncoding("bins", 512, 0.8, 8.0, decode="log-expectation")
    torch.testing.assert_close(geometric.to_metres(hist), torch.exp(log_mean), rtol=3e-3, atol=0)
    assert (torch.exp(log_mean) <= mean + 1e-5).all()  # geometric ≤ arithmetic mean


def test_bin_edges_are_log_spaced_over_the_range_and_out_of_range_depths_land_at_the_ends():
    encoding = DepthEncoding("bins", 4).with_range(1.0, 16.0)
    torch.testing.assert_close(encoding.edges(), torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0], dtype=torch.float64))
    torch.testing.assert_close(encoding.centres(), torch.tensor([2 ** 0.5, 2 ** 1.5, 2 ** 2.5, 2 ** 3.5],
                                                                dtype=torch.float64))
    depth = torch.tensor([[0.5, 3.0], [20.0, 5.0]])
    hist, _ = encoding.targets(depth, grid=(1, 1))
    assert hist[0, 0, 0].tolist() == [0.25, 0.25, 0.25, 0.25]  # 0.5 → first bin, 20 → last
    assert DepthEncoding("bins", 4).with_range(3.0, 3.0).high > 3.0  # one depth still gets distinct bins


def test_decoding_is_a_weighted_average_in_the_encodings_space():
    two = torch.tensor([[1.0], [4.0]])
    assert DepthEncoding("mean").to_metres(two.mean(0, keepdim=True)).item() == 2.5
    logs = torch.log(two)
    assert DepthEncoding("log-mean").to_metres(logs.mean(0, keepdim=True)).item() == pytest.approx(2.0)  # √(1·4)
    with pytest.raises(ConfigError, match="targets have 3 values per row, the mean encoding 1"):
        DepthEncoding("mean").to_metres(torch.ones(2, 3))


def test_encodings_are_checked_and_recorded():
    assert ENCODINGS == DEPTH_ENCODINGS and DEFAULT_DEPTH_ENCODING in ENCODINGS
    with pytest.raises(ConfigError, match="depth encoding 'median': use one of mean, log-mean, bins"):
        DepthEncoding("median")
    with pytest.raises(ConfigError, match="--bin-decode 'mode'"):
        DepthEncoding("bins", decode="mode")
    with pytest.raises(ConfigError, match="--depth-bins 1: need at least 2 bins"):
        DepthEncoding("bins", 1)
    bins = DepthEncoding("bins", 16, 0.7, 10.0, "expectation")
    assert DepthEncoding.from_metadata(bins.metadata()) == bins and bins.width == 16
    assert bins.label == "bins16-expectation" and DepthEncoding.from_metadata({"name": "log-mean"}).width == 1


def test_upsampling_is_bilinear_with_half_pixel_centres_and_keeps_values():
    grid = torch.tensor([[[1.0, 3.0]]])  # one row, two patches
    up = upsample_depth(grid, (1, 4))[0, 0]
    assert up.tolist() == [1.0, 1.5, 2.5, 3.0]  # centres at 0.5 and 2.5 pixels; edges replicated
    torch.testing.assert_close(upsample_depth(torch.full((1, 3, 4), 2.5), (30, 40)), torch.full((1, 30, 40), 2.5))


def test_a_border_is_filled_by_replicating_the_edge():
    region = torch.arange(6, dtype=torch.float32).reshape(1, 2, 3)
    full = fill_frame(region, (1, 3, 2, 5), (4, 6))
    assert full.shape == (1, 4, 6)
    assert torch.equal(full[0, 1:3, 2:5], region[0])
    assert full[0, 0].tolist() == [0, 0, 0, 1, 2, 2] and full[0, 3].tolist() == [3, 3, 3, 4, 5, 5]
    assert fill_frame(region, (0, 2, 0, 3), (2, 3)) is region
