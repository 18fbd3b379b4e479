"""Mask → patch label distributions, and class-balanced patch selection."""

import pytest
import torch

from hummingbird.memory.patch_labels import patch_label_distributions
from hummingbird.memory.sampling import class_balanced_selection


def test_hand_computed_patch_distributions():
    mask = torch.tensor([[[0, 0, 1, 1],
                          [0, 2, 1, 255],
                          [255, 255, 2, 2],
                          [255, 255, 2, 0]]])
    d = patch_label_distributions(mask, patch_size=2, num_classes=3)
    assert d.shape == (1, 2, 2, 3)
    torch.testing.assert_close(d[0, 0, 0], torch.tensor([0.75, 0.0, 0.25]))
    torch.testing.assert_close(d[0, 0, 1], torch.tensor([0.0, 1.0, 0.0]))  # ignored pixel not counted
    torch.testing.assert_close(d[0, 1, 0], torch.zeros(3))  # all ignored
    torch.testing.assert_close(d[0, 1, 1], torch.tensor([0.25, 0.0, 0.75]))


def test_distributions_are_per_image_in_a_batch():
    masks = torch.stack([torch.zeros(4, 4, dtype=torch.long), torch.ones(4, 4, dtype=torch.long)])
    d = patch_label_distributions(masks, 2, 2)
    assert (d[0, ..., 0] == 1).all() and (d[1, ..., 1] == 1).all()


def test_out_of_range_mask_values_are_reported():
    with pytest.raises(ValueError, match=r"mask values \[7\] are outside \[0, 3\)"):
        patch_label_distributions(torch.full((1, 2, 2), 7), 2, 3)


def test_class_balanced_selection_picks_rare_class_patches_first():
    # 16 patches: 13 pure class 0, 2 containing rare class 2 (one mixed), 1 fully ignored
    dists = torch.zeros(1, 16, 3)
    dists[0, :13, 0] = 1
    dists[0, 13] = torch.tensor([0.5, 0.0, 0.5])
    dists[0, 14, 2] = 1
    chosen = class_balanced_selection(dists, per_image=2, seeds=[0])
    assert sorted(chosen[0].tolist()) == [13, 14]
    # asking for more than the labelled patches: ignored patch never picked, slots marked -1
    chosen = class_balanced_selection(dists, per_image=16, seeds=[0])
    assert 15 not in chosen[0].tolist() and chosen[0, -1] == -1 and (chosen[0, :15] >= 0).all()


def test_class_balanced_tie_break_is_random_but_seeded():
    dists = torch.zeros(1, 64, 2)
    dists[0, :, 0] = 1

    def pick(seed):
        return class_balanced_selection(dists, 8, [seed])[0].tolist()

    assert pick(1) == pick(1)
    assert pick(1) != pick(2)
    assert len(set(pick(1))) == 8
    # an image's selection does not depend on the other images of its batch
    batch = torch.cat([dists, dists])
    assert class_balanced_selection(batch, 8, [1, 2])[0].tolist() == pick(1)
