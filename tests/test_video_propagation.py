"""Label propagation's parts: the windowed context memory equals DINO's dense arrangement (window, joint
top-k over frames with ties, normalisation) including after its ring of frames wraps around; a video whose
frames do not change keeps the first mask; the protocol's frame sizes; the palettes. Synthetic data, a
random one-block ViT."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from hummingbird.memory.video_context import ContextMemory, dense_attention, window_mask
from hummingbird.tasks.video import VIDEO_PROTOCOLS, VideoPropagator, davis_palette, first_mask_grid, norm_mask


@pytest.mark.parametrize("grid,frames,radius,tiles", [((34, 59), 8, 12, (6, 20)), ((7, 9), 3, 2, (2, 4)),
                                                      ((5, 5), 2, 12, (1, 2)), ((12, 10), 1, 3, (12, 10))])
def test_windowed_memory_equals_dense_attention(grid, frames, radius, tiles):
    torch.manual_seed(sum(grid))
    h, w = grid
    feats = [F.normalize(torch.randn(h, w, 16), dim=-1) for _ in range(frames)]
    targets = [torch.rand(h, w, 3) for _ in range(frames)]
    memory = ContextMemory(grid, 16, 3, frames, radius, 5, 0.1, band_rows=tiles[0], tile_cols=tiles[1])
    for f, t in zip(feats, targets):
        memory.add(f, t)
    query = F.normalize(torch.randn(h, w, 16), dim=-1)
    dense = dense_attention(query.reshape(-1, 16), torch.stack(feats).reshape(frames, -1, 16),
                            torch.stack(targets).reshape(frames, -1, 3), window_mask(h, w, radius), 5, 0.1)
    torch.testing.assert_close(memory.attend(query).reshape(-1, 3), dense, rtol=0, atol=1e-6)


def test_ties_with_the_kth_are_all_kept():
    torch.manual_seed(0)
    h = w = 8
    base = F.normalize(torch.randint(0, 2, (h, w, 4)).float() + 1e-3, dim=-1)  # many equal features
    feats, targets = [base, base.roll(1, 0), base.roll(1, 1)], [torch.rand(h, w, 2) for _ in range(3)]
    memory = ContextMemory((h, w), 4, 2, 3, 3, 5, 0.1, band_rows=3, tile_cols=4)
    for f, t in zip(feats, targets):
        memory.add(f, t)
    dense = dense_attention(base.reshape(-1, 4), torch.stack(feats).reshape(3, -1, 4),
                            torch.stack(targets).reshape(3, -1, 2), window_mask(h, w, 3), 5, 0.1)
    torch.testing.assert_close(memory.attend(base).reshape(-1, 2), dense, rtol=0, atol=1e-6)


def test_ring_keeps_the_first_frame_and_the_last_ones():
    torch.manual_seed(1)
    h, w, capacity = 6, 7, 4
    memory = ContextMemory((h, w), 8, 2, capacity, 2, 5, 0.1, band_rows=2, tile_cols=3)
    added = []
    for _ in range(9):
        f, t = F.normalize(torch.randn(h, w, 8), dim=-1), torch.rand(h, w, 2)
        memory.add(f, t)
        added.append((f, t))
    kept = [added[0], *added[-(capacity - 1):]]
    assert len(memory) == capacity
    query = F.normalize(torch.randn(h, w, 8), dim=-1)
    dense = dense_attention(query.reshape(-1, 8), torch.stack([k[0] for k in kept]).reshape(capacity, -1, 8),
                            torch.stack([k[1] for k in kept]).reshape(capacity, -1, 2), window_mask(h, w, 2), 5, 0.1)
    torch.testing.assert_close(memory.attend(query).reshape(-1, 2), dense, rtol=0, atol=1e-6)


def test_protocol_frame_sizes():
    dino = VIDEO_PROTOCOLS["dino"]
    assert dino.network_size(480, 854) == (480, 832)
    assert dino.network_size(854, 480) == (832, 480)
    assert dino.network_size(720, 1280) == (480, 832)
    assert dino.network_size(480, 480) == (480, 448)


def test_first_mask_grid_and_norm_mask():
    ids = np.zeros((480, 854), np.uint8)
    ids[100:300, 200:400] = 2
    grid = first_mask_grid(ids, (34, 59))
    assert grid.shape == (3, 34, 59) and (grid.sum(0) == 1).all() and grid[1].sum() == 0
    soft = torch.tensor([[[0.2, 0.6]], [[0.0, 0.0]]])
    out = norm_mask(soft.clone())
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(out[1], soft[1])


def test_palettes():
    davis, dino = davis_palette("davis"), davis_palette("dino")
    assert tuple(davis[1]) == (128, 0, 0) and tuple(davis[9]) == (192, 0, 0)
    assert tuple(dino[9]) == (191, 0, 0) and tuple(dino[30]) == (30, 30, 30)


@pytest.fixture(scope="module")
def static_video(tmp_path_factory):
    """Four identical 96x64 frames with a square object, and its mask."""
    root = tmp_path_factory.mktemp("static")
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    frame[20:44, 30:60] = (250, 40, 40)
    (root / "frames").mkdir()
    for i in range(4):
        Image.fromarray(frame).save(root / "frames" / f"f{i}.png")
    mask = np.zeros((64, 96), np.uint8)
    mask[20:44, 30:60] = 1
    Image.fromarray(mask).save(root / "mask.png")
    return root, mask


def test_a_video_that_does_not_change_keeps_its_first_mask(static_video, tmp_path):
    root, mask = static_video
    prop = VideoPropagator.load("dinov2_vits14", "random", device="cpu", depth=1)
    frames = list(prop.propagate(root / "frames", root / "mask.png"))
    assert [f.stem for f in frames] == ["f0", "f1", "f2", "f3"]
    np.testing.assert_array_equal(frames[0].labels, mask)
    for f in frames[1:]:
        assert f.labels.shape == mask.shape and (f.labels == mask).mean() > 0.97
    summary = prop.propagate_to(root / "frames", root / "mask.png", tmp_path)
    assert summary["num_frames"] == 4 and (tmp_path / "summary.json").is_file()
    written = Image.open(tmp_path / "f2.png")
    assert written.mode == "P" and written.size == (96, 64)
    np.testing.assert_array_equal(np.array(written), frames[2].labels)
