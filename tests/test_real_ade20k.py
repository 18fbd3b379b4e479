"""The ADE20K loader on the real ADEChallengeData2016 pairs in ../shared (skipped when absent)."""

import numpy as np
import pytest
from PIL import Image
from realdata import real_ade20k

from hummingbird.datasets.base import IGNORE_INDEX
from hummingbird.datasets.registry import load_dataset
from hummingbird.datasets.transforms import EvalResize
from hummingbird.evaluation.protocols import PROTOCOLS

pytestmark = pytest.mark.realdata


@pytest.mark.parametrize("split", ["training", "validation"])
def test_real_ade20k_labels_shift_down_and_other_is_ignored(split):
    root = real_ade20k()
    dataset = load_dataset("ade20k", root, split)
    assert dataset.num_classes == 150 and len(dataset) >= 1
    for index, sample in enumerate(dataset.samples):
        with Image.open(sample.mask) as img:
            raw = np.array(img).astype(np.int64)
        mask = dataset.read_mask(index)
        assert mask.shape == raw.shape
        assert (mask[raw == 0] == IGNORE_INDEX).all() and (raw == 0).any()  # "other" is ignored ...
        np.testing.assert_array_equal(mask[raw > 0], raw[raw > 0] - 1)  # ... and the rest shifts down by one
        image, _ = dataset.load_sample(index)
        assert (image.height, image.width) == raw.shape


def test_real_ade20k_under_the_open_hbird_preset_keeps_raw_labels():
    root = real_ade20k()
    preset = PROTOCOLS["open-hbird"]
    memory = load_dataset("ade20k", root, "training", EvalResize(56), **preset.dataset_options("ade20k", "memory"))
    evaluation = load_dataset("ade20k", root, "validation", **preset.dataset_options("ade20k", "evaluation"))
    assert memory.num_classes == evaluation.num_classes == 151 and memory.class_names[0] == "other"
    raw_training = np.array(Image.open(memory.samples[0].mask)).astype(np.int64)
    np.testing.assert_array_equal(memory.read_mask(0), raw_training)  # "other" is class 0 of the memory
    raw_val = np.array(Image.open(evaluation.samples[0].mask)).astype(np.int64)
    np.testing.assert_array_equal(evaluation.read_mask(0), np.where(raw_val == 0, IGNORE_INDEX, raw_val))
    item = memory[0]
    assert item["image"].shape == (3, 56, 56) and set(item["mask"].unique().tolist()) <= set(range(151))
