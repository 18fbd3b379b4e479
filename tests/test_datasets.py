"""Dataset layouts built in temporary folders: VOC (255 ignore, trainaug), ADE20K (label shift), folders."""

import numpy as np
import pytest
import torch
from conftest import write_ade, write_folder_dataset, write_voc
from PIL import Image

from hummingbird.datasets.base import IGNORE_INDEX
from hummingbird.datasets.classes import ADE20K_CLASSES, VOC_CLASSES
from hummingbird.datasets.registry import load_dataset
from hummingbird.datasets.transforms import EvalResize, MemoryAugment
from hummingbird.errors import DatasetError


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


def _write_coco(root, kind):
    """Two 40x30 images; a person (supercategory person) box and a dog (animal), or two stuff regions."""
    import json

    (root / "val2017").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    for i in (1, 2):
        Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(root / "val2017" / f"{i:012d}.jpg")
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 40, "height": 30} for i in (1, 2)]

    def box(image, cat, x0, y0, x1, y1, ann_id):
        poly = [x0, y0, x1, y0, x1, y1, x0, y1]
        return {"id": ann_id, "image_id": image, "category_id": cat, "segmentation": [poly],
                "area": float((x1 - x0) * (y1 - y0)), "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0}

    if kind == "instances":
        cats = [{"id": 1, "name": "person", "supercategory": "person"}, {"id": 18, "name": "dog", "supercategory": "animal"},
                {"id": 19, "name": "horse", "supercategory": "animal"}]
        anns = [box(1, 1, 0, 0, 10, 10, 1), box(1, 18, 20, 10, 30, 20, 2), box(2, 19, 0, 0, 40, 30, 3)]
    else:
        cats = [{"id": 92, "name": "banner", "supercategory": "textile"}, {"id": 105, "name": "grass", "supercategory": "plant"},
                {"id": 183, "name": "other", "supercategory": "other"}]
        anns = [box(1, 105, 0, 15, 40, 30, 1), box(1, 183, 0, 0, 40, 15, 2), box(2, 92, 0, 0, 40, 30, 3)]
    (root / "annotations" / f"{kind}_val2017.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": cats}))


def test_coco_things_supercategories_with_cached_masks(tmp_path):
    _write_coco(tmp_path / "coco", "instances")
    ds = load_dataset("coco_things", tmp_path / "coco", "val", progress=False)
    assert ds.class_names == ("background", "person", "animal") and len(ds) == 2
    mask = ds[0]["mask"]
    assert (mask[2:8, 2:8] == 1).all() and (mask[12:18, 22:28] == 2).all() and (mask[25:, 35:] == 0).all()
    assert (ds[1]["mask"][5:25, 5:35] == 2).all()  # horse → animal
    cached = tmp_path / "coco" / "hummingbird_masks" / "things_val2017" / "1.png"
    stamp = cached.stat().st_mtime_ns
    load_dataset("coco_things", tmp_path / "coco", "val", progress=False)
    assert cached.stat().st_mtime_ns == stamp  # rendered once


def test_coco_stuff_ignores_other_and_things(tmp_path):
    _write_coco(tmp_path / "coco", "stuff")
    ds = load_dataset("coco_stuff", tmp_path / "coco", "val", progress=False)
    assert ds.class_names == ("textile", "plant")
    mask = ds[0]["mask"]
    assert (mask[18:28, 5:35] == 1).all() and (mask[2:12] == IGNORE_INDEX).all()  # "other" ignored
    assert (ds[1]["mask"][5:25, 5:35] == 0).all()


def test_cityscapes_label_ids_become_train_ids(tmp_path):
    root = tmp_path / "cityscapes"
    (root / "leftImg8bit" / "val" / "bonn").mkdir(parents=True)
    (root / "gtFine" / "val" / "bonn").mkdir(parents=True)
    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(root / "leftImg8bit/val/bonn/bonn_000001_000019_leftImg8bit.png")
    ids = np.zeros((16, 32), np.uint8)
    ids[:, :8], ids[:, 8:16], ids[:, 16:24], ids[:, 24:] = 7, 26, 33, 4  # road, car, bicycle, static (ignored)
    Image.fromarray(ids).save(root / "gtFine/val/bonn/bonn_000001_000019_gtFine_labelIds.png")
    ds = load_dataset("cityscapes", root, "val")
    assert ds.num_classes == 19 and ds.samples[0].id == "bonn_000001_000019"
    mask = ds[0]["mask"]
    assert mask[0, 0] == 0 and mask[0, 8] == 13 and mask[0, 16] == 18 and mask[0, 24] == IGNORE_INDEX
