"""Dataset layouts built in temporary folders: VOC (255 ignore, trainaug), ADE20K (label shift), folders."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_ade, write_folder_dataset, write_voc
from hummingbird.classes import ADE20K_CLASSES, VOC_CLASSES
from hummingbird.datasets import IGNORE_INDEX, load_dataset
from hummingbird.errors import DatasetError
from hummingbird.transforms import EvalResize, MemoryAugment


def test_voc_palette_masks_keep_indices_and_255(tmp_path):
    root = write_voc(tmp_path)
    train = load_dataset("voc", root, "train")
    assert [s.id for s in train.samples] == ["2007_000032", "2007_000039"]
    assert train.num_classes == 21 and train.class_names == VOC_CLASSES
    mask = train[0]["mask"]
    assert mask.shape == (32, 40)
    assert set(torch.unique(mask).tolist()) == {0, 15, IGNORE_INDEX}
    assert (mask[16] == IGNORE_INDEX).all()
    assert train.samples[0].mask.parent.name == "SegmentationClass"


def test_voc_trainaug_uses_segmentation_class_aug(tmp_path):
    root = write_voc(tmp_path)
    aug = load_dataset("voc", root / "VOCdevkit", "trainaug")
    assert len(aug) == 3 and aug.samples[0].mask.parent.name == "SegmentationClassAug"
    assert set(torch.unique(aug[2]["mask"]).tolist()) == {3}


def test_voc_missing_split_names_expected_files(tmp_path):
    root = write_voc(tmp_path)
    with pytest.raises(DatasetError, match="no list for split 'test'"):
        load_dataset("voc", root, "test")
    with pytest.raises(DatasetError, match="not a Pascal VOC 2012 folder"):
        load_dataset("voc", tmp_path / "nowhere", "train")


def test_ade20k_shifts_labels_and_ignores_zero(tmp_path):
    root = write_ade(tmp_path)
    val = load_dataset("ade20k", root, "val")
    assert val.num_classes == 150 and len(ADE20K_CLASSES) == 150 and val.split == "validation"
    mask = val[0]["mask"]
    assert (mask[:, :8] == IGNORE_INDEX).all()  # raw 0 → ignore
    assert (mask[:, 8:16] == 0).all()  # raw 1 (wall) → 0
    assert (mask[:, 16:24] == 149).all()  # raw 150 (flag) → 149
    assert (mask[:, 24:] == 12).all() and val.class_names[12] == "person"


def test_folder_dataset_splits_classes_and_fileset(tmp_path):
    root = write_folder_dataset(tmp_path / "f", n_train=5, n_val=2)
    train = load_dataset("folder", root, "train")
    assert len(train) == 5 and train.class_names == ("bg", "red", "green", "blue")
    everything = load_dataset("folder", root, "all")
    assert len(everything) == 7
    fileset = tmp_path / "subset.txt"
    fileset.write_text("img004\nimg001\n")
    subset = load_dataset("folder", root, "train", fileset=fileset)
    assert [s.id for s in subset.samples] == ["img004", "img001"]
    fileset.write_text("img001\nimg999\n")
    with pytest.raises(DatasetError, match=r"subset.txt: 1 ids are not in split 'train'.*img999"):
        load_dataset("folder", root, "train", fileset=fileset)


def test_folder_infers_class_count_without_classes_file(tmp_path):
    root = write_folder_dataset(tmp_path / "f", n_train=3, n_val=1, num_classes=3)
    (root / "classes.txt").unlink()
    ds = load_dataset("folder", root, "all")
    assert ds.num_classes == 3


def test_folder_image_without_mask_is_listed(tmp_path):
    root = write_folder_dataset(tmp_path / "f", n_train=2, n_val=1)
    (root / "masks" / "img001.png").unlink()
    with pytest.raises(DatasetError, match=r"masks: 1 images have no mask <id>.png: img001.png"):
        load_dataset("folder", root, "all")


def test_mask_size_mismatch_and_rgb_mask_are_clear(tmp_path):
    root = write_folder_dataset(tmp_path / "f", n_train=2, n_val=1)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "masks" / "img000.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(root / "masks" / "img001.png")
    ds = load_dataset("folder", root, "all")
    with pytest.raises(DatasetError, match=r"img000.png: mask is 10x10 but its image is 64x64"):
        ds[0]
    with pytest.raises(DatasetError, match=r"img001.png: mask is a 3-channel colour image"):
        ds[1]


def test_eval_resize_uses_nearest_for_masks(tmp_path):
    root = write_ade(tmp_path)
    ds = load_dataset("ade20k", root, "training", EvalResize(56))
    sample = ds[0]
    assert sample["image"].shape == (3, 56, 56) and sample["image"].dtype == torch.float32
    assert 0 <= sample["image"].min() and sample["image"].max() <= 1
    assert set(torch.unique(sample["mask"]).tolist()) <= {0, 12, 149, IGNORE_INDEX}


def test_memory_augment_keeps_image_and_mask_aligned():
    # the image encodes its own mask (class c painted c*60), so any misalignment shows up
    rng = np.random.default_rng(0)
    mask = np.kron(rng.integers(0, 4, (6, 6)), np.ones((16, 16), np.int64))
    image = Image.fromarray(np.repeat((mask * 60).astype(np.uint8)[..., None], 3, axis=2))
    aug = MemoryAugment(48, jitter_p=0.0)
    for seed in range(5):
        img_t, mask_t, view = aug(image, mask, seed)
        assert img_t.shape == (3, 48, 48) and mask_t.shape == (48, 48)
        decoded = torch.round(img_t[0] * 255 / 60).long()
        interior = torch.nn.functional.max_pool2d((decoded != mask_t)[None].float(), 3, 1, 1)[0] == 0
        assert interior.float().mean() > 0.5  # away from block edges, pixels agree exactly
        assert set(torch.unique(mask_t).tolist()) <= {0, 1, 2, 3}
        top, left, height, width, flipped = view.tolist()
        assert 0 <= top and top + height <= 96 and 0 <= left and left + width <= 96 and flipped in (0, 1)
    a, b = aug(image, mask, 7), aug(image, mask, 7)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(aug(image, mask, 8)[1], a[1]) or not torch.equal(aug(image, mask, 8)[0], a[0])
