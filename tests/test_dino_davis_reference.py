"""The ``dino`` video protocol reproduces DINO's official ``eval_video_segmentation.py`` (run with the official
DINOv2 model code and the real weights of ../shared on the first 20 frames of DAVIS ``blackswan`` and ``dog``:
``../shared/peers/dino-davis-reference``, its README lists what a re-implementation must match).

Checked per sequence: the normalised network input of frame 0 (two crops and the channel sums), the patch
features of frames 0-2 and the per-frame feature sums of all 20, the first mask on the patch grid, the soft
segmentation of frames 1-19 before upsampling (float error), and the written labels (≥ 99.9 % of pixels
equal, the palette the official code writes). Skipped without the shared data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from realdata import real_davis, real_peer, real_weights

from hummingbird.datasets.davis import FrameFolder
from hummingbird.tasks.video import VideoPropagator, davis_palette

SEQUENCES = ("blackswan", "dog")
FRAMES = 20


@pytest.fixture(scope="module")
def propagator():
    name, weights = real_weights()
    if name != "dinov2_vits14":
        pytest.skip(f"the reference was run with dinov2_vits14 weights, not {name}")
    return VideoPropagator.load(name, weights, device="cpu", max_frames=FRAMES)


@pytest.fixture(scope="module", params=SEQUENCES)
def run(request, propagator):
    """(sequence, reference npz, our frames, our raw features by stem)."""
    peer, davis = real_peer("dino-davis-reference"), real_davis()
    seq = request.param
    reference = dict(np.load(peer / f"{seq}.npz"))
    features: dict = {}
    frames = list(propagator.propagate(davis / "JPEGImages" / "480p" / seq,
                                       davis / "Annotations" / "480p" / seq / "00000.png",
                                       keep_soft=True, features_of=features))
    return seq, reference, frames, features


def test_network_input_is_the_reference_input(propagator, run):
    seq, ref, _, _ = run
    frame0 = FrameFolder.open(real_davis() / "JPEGImages" / "480p" / seq).read(0)
    x = propagator.encoder.normalise(propagator.frame_input(frame0)[None])[0]
    assert tuple(x.shape) == (3, 476, 826)
    for crop, (top, bottom, left, right) in zip(ref["frame0_input_crops"], ref["frame0_input_crop_boxes"]):
        np.testing.assert_allclose(x[:, top:bottom, left:right].numpy(), crop, rtol=0, atol=1e-6)
    whole = propagator.encoder.normalise(propagator.frame_input(frame0, crop=False)[None])[0]  # 480x832
    assert tuple(whole.shape) == (3, 480, 832)
    np.testing.assert_allclose(whole.double().sum((1, 2)).numpy(), ref["frame0_input_channel_sum"], rtol=1e-9)


def test_features_match_to_float_error(run):
    _, ref, _, features = run
    ours = torch.stack(list(features.values())[:3]).numpy()
    np.testing.assert_allclose(ours, ref["features"], rtol=0, atol=2e-4)  # values up to ~11
    sums = np.array([float(f.double().sum()) for f in features.values()])
    np.testing.assert_allclose(sums, ref["feature_sum"], rtol=1e-5, atol=0.5)
    sumsq = np.array([float((f.double() ** 2).sum()) for f in features.values()])
    np.testing.assert_allclose(sumsq, ref["feature_sumsq"], rtol=1e-5)


def test_first_mask_on_the_patch_grid_is_the_reference_one(run):
    _, ref, frames, _ = run
    np.testing.assert_array_equal(frames[0].soft.numpy(), ref["first_seg"])


def test_soft_segmentations_match_to_float_error(run):
    """Every frame's soft segmentation equals the reference's to float error, until a frame where one patch's
    top-k choice differs (two context patches whose affinities tie to float error: dog frame 13, one patch);
    the soft predictions feed the next frames' context, so later frames then differ a little more (< 0.01)."""
    seq, ref, frames, _ = run
    soft = torch.stack([f.soft for f in frames[1:]]).numpy()
    assert soft.shape == ref["soft_seg"].shape
    far = (np.abs(soft - ref["soft_seg"]) > 1e-4).any(1)  # (frames, h, w): patches off by more than float error
    flipped = [i for i in range(len(far)) if far[i].any()]
    if flipped:
        assert far[flipped[0]].sum() == 1, f"{seq} frame {flipped[0] + 1}: {int(far[flipped[0]].sum())} patches differ"
        assert seq != "blackswan", "blackswan's reference has no near tie"
    assert np.abs(soft - ref["soft_seg"]).max() < 1e-2
    assert far.mean() < 0.05  # dog: 1.2 % of patch-frames, all after frame 13


def test_labels_equal_on_at_least_999_permille_of_pixels(run):
    seq, ref, frames, _ = run
    peer = real_peer("dino-davis-reference")
    assert [f.stem for f in frames] == [n.removesuffix(".png") for n in ref["frame_names"]]
    ours = np.stack([f.labels for f in frames])
    written = np.stack([np.array(Image.open(peer / "labels" / seq / f"{i:05d}.png")) for i in range(FRAMES)])
    np.testing.assert_array_equal(written, ref["labels"])
    for i in range(FRAMES):
        agreement = (ours[i] == written[i]).mean()
        assert agreement >= 0.999, f"{seq} frame {i}: {agreement:.5%} of pixels equal"
    assert (ours == written).mean() >= 0.9999


def test_written_pngs_are_the_reference_files(propagator, tmp_path):
    """propagate_to writes palette PNGs with the reference's palette and pixels (3 frames of blackswan)."""
    peer, davis = real_peer("dino-davis-reference"), real_davis()
    short = VideoPropagator(propagator.encoder, max_frames=3)
    short.propagate_to(davis / "JPEGImages" / "480p" / "blackswan",
                       davis / "Annotations" / "480p" / "blackswan" / "00000.png", tmp_path)
    for i in range(3):
        ours, theirs = Image.open(tmp_path / f"{i:05d}.png"), Image.open(peer / "labels" / "blackswan" / f"{i:05d}.png")
        assert ours.mode == theirs.mode == "P" and ours.size == theirs.size == (854, 480)
        assert ours.getpalette() == theirs.getpalette() == davis_palette("dino").ravel().tolist()
        np.testing.assert_array_equal(np.array(ours), np.array(theirs))
