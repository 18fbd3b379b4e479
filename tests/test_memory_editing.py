"""Editing a memory image by image (:mod:`hummingbird.memory.editing`) and the :class:`hummingbird.Segmenter`
methods of the labelling loop: an empty memory, an example set again replaces its rows (never duplicated),
removal renumbers the images, classes grow, and labels from cached features equal ``segment``'s."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hummingbird import Segmenter
from hummingbird.errors import BankError, ConfigError
from hummingbird.memory.editing import empty_bank, remove_image_rows, replace_image_rows, with_class_names

RANDOM = {"backbone": "dino_vits16", "weights": "random", "input_size": 64, "k": 5}


def _rows(n, dim=4, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.nn.functional.one_hot(torch.randint(0, classes, (n,), generator=g), classes).float()
    return torch.randn(n, dim, generator=g), labels, torch.stack([torch.arange(n) // 2, torch.arange(n) % 2], 1)


def test_replace_remove_and_grow_classes():
    bank = empty_bank(4, ["a", "b", "c"], {"patch_size": 16})
    bank = replace_image_rows(bank, "x", *_rows(5), [0, 0, 10, 10, 0])
    bank = replace_image_rows(bank, "y", *_rows(3, seed=1), [0, 0, 20, 20, 0])
    again = replace_image_rows(bank, "x", *_rows(2, seed=2), [0, 0, 10, 10, 0])
    assert len(bank) == 8 and len(again) == 5 and again.metadata["image_ids"] == ["x", "y"]
    assert again.image_index().tolist() == [1, 1, 1, 0, 0]  # y's rows kept, x's replaced at the end
    assert torch.equal(again.features[3:], _rows(2, seed=2)[0])
    gone = remove_image_rows(again, "x")
    assert gone.metadata["image_ids"] == ["y"] and gone.image_index().tolist() == [0, 0, 0]
    assert torch.equal(gone.features, _rows(3, seed=1)[0]) and gone.views.tolist() == [[0, 0, 0, 20, 20, 0]]
    assert remove_image_rows(gone, "nope") is gone
    grown = with_class_names(gone, ["a", "bee", "c", "d"])
    assert grown.class_names == ["a", "bee", "c", "d"] and grown.labels.shape == (3, 4)
    assert grown.labels[:, 3].abs().sum() == 0
    with pytest.raises(BankError, match="not removed"):
        with_class_names(gone, ["a"])
    with pytest.raises(BankError, match="labels over 2 classes"):
        replace_image_rows(gone, "z", torch.zeros(1, 4), torch.zeros(1, 2), torch.zeros(1, 2), [0, 0, 1, 1, 0])


def test_segmenter_labelling_loop_replaces_rows_and_matches_segment():
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (48 + 8 * i, 80, 3), dtype=np.uint8)) for i in range(3)]
    seg = Segmenter.empty(["bg", "thing", "other"], **RANDOM)
    assert len(seg.bank) == 0
    feats = [seg.encode(im) for im in images]
    assert feats[0].shape == (4, 4, seg.bank.dim)
    with pytest.raises(ConfigError, match="memory is empty"):
        seg.segment_features(feats[1], (56, 80))
    mask = np.full((48, 80), 255, np.uint8)
    mask[:20, :40] = 1
    seg.set_example("a", images[0], mask, features=feats[0])
    first = len(seg.bank)
    assert 0 < first < 16  # only the patches with labelled pixels
    seg.set_example("a", images[0], mask, features=feats[0])
    assert len(seg.bank) == first  # replaced, not duplicated
    seg.set_example("b", images[1], np.zeros((56, 80), np.uint8))
    assert seg.bank.metadata["image_ids"] == ["a", "b"] and len(seg.bank) == first + 16
    labels = seg.segment_features(feats[2], (64, 80))
    assert np.array_equal(labels, seg.segment(images[2], resize_mode="square"))
    near = seg.neighbours_of_features(feats[2], 1, 2, k=3)
    assert len(near) == 3 and {n.image_id for n in near} <= {"a", "b"}
    with pytest.raises(ConfigError, match="values \\[7\\]"):
        seg.set_example("c", images[2], np.full((64, 80), 7, np.uint8))
    with pytest.raises(ConfigError, match="mask is 80x48"):
        seg.set_example("c", images[2], mask)
    seg.remove_example("a")
    assert seg.bank.metadata["image_ids"] == ["b"] and len(seg.bank) == 16
    seg.set_class_names(["bg", "thing", "other", "new"])
    assert seg.num_classes == 4 and seg.segment_features(feats[0], (48, 80)).max() <= 3


def test_feature_cache_computes_once_reads_back_and_replaces_a_damaged_file(tmp_path):
    from hummingbird.app.features import FeatureCache

    calls = []

    def encode(image_id):
        calls.append(image_id)
        return torch.full((2, 3, 4), float(len(calls)))

    cache = FeatureCache(tmp_path / "f", encode, keep=1)
    first = cache.get("a")
    assert torch.equal(cache.get("a"), first) and calls == ["a"]
    cache.get("b")  # "a" leaves memory (keep=1) and is read back from disk
    assert torch.equal(cache.get("a"), first) and calls == ["a", "b"]
    (tmp_path / "f" / "b.npy").write_bytes(b"damaged")
    again = FeatureCache(tmp_path / "f", encode)
    assert again.cached("b") and torch.equal(again.get("b"), torch.full((2, 3, 4), 3.0)) and calls == ["a", "b", "b"]
    (tmp_path / "f" / ".c.npy.123.tmp").write_bytes(b"left by kill -9")
    FeatureCache(tmp_path / "f", encode)
    assert not list((tmp_path / "f").glob(".*.tmp"))
    again.start_first_pass(["a", "b", "c"])
    again.wait(30)
    assert again.progress["done"] == 3 and again.progress["encoded"] == 1 and calls[-1] == "c"
