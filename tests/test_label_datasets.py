"""Labels a practitioner already has: a COCO JSON (polygons and RLE) over an image folder (``--dataset
coco-json``) and a folder of labelme JSON files (``--dataset labelme``), read into masks, built into memories by
the command line, and opened by the label app as its starting annotations."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from label_server import ROOT, voc_photos
from PIL import Image
from realdata import real_voc, real_weights

from hummingbird.datasets.registry import load_dataset
from hummingbird.errors import DatasetError

VOC_NAMES = {0: "background", 1: "aeroplane", 9: "chair", 15: "person"}


def _voc_root(voc):
    return next(c for c in (voc, voc / "VOC2012", voc / "VOCdevkit" / "VOC2012") if (c / "JPEGImages").is_dir())


def _coco_json(voc, ids, path):
    """A COCO JSON of real VOC masks: RLE for the first class of each image, polygons (its bounding box) for
    the others; categories with ids 7, 3, 12, 5 (not in order) named after the VOC classes."""
    from pycocotools import mask as mask_utils

    cat_ids = {0: 7, 1: 3, 9: 12, 15: 5}
    images, annotations, expected = [], [], {}
    for n, image_id in enumerate(ids, start=1):
        raw = np.array(Image.open(_voc_root(voc) / "SegmentationClass" / f"{image_id}.png"))
        height, width = raw.shape
        images.append({"id": n, "file_name": f"{image_id}.jpg", "height": height, "width": width})
        present = [c for c in cat_ids if (raw == c).any()]
        mask = np.full(raw.shape, 255, np.uint8)
        order = sorted(cat_ids.values())
        for i, voc_class in enumerate(present):
            pixels = raw == voc_class
            if i == 0:
                rle = mask_utils.encode(np.asfortranarray(pixels.astype(np.uint8)))
                segmentation = {"size": rle["size"], "counts": rle["counts"].decode()}
                area = float(pixels.sum())
                drawn = pixels
            else:
                ys, xs = np.nonzero(pixels)
                x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
                segmentation = [[x0, y0, x1, y0, x1, y1, x0, y1]]
                area = 0.0  # drawn last: on top of the RLE region
                drawn = mask_utils.decode(mask_utils.frPyObjects(segmentation, height, width))[..., 0].astype(bool)
            annotations.append({"id": len(annotations) + 1, "image_id": n, "category_id": cat_ids[voc_class],
                                "segmentation": segmentation, "area": area, "iscrowd": 0,
                                "bbox": [0, 0, 1, 1]})
            mask[drawn] = order.index(cat_ids[voc_class])
        expected[image_id] = mask
    categories = [{"id": cid, "name": VOC_NAMES[c], "supercategory": "x"} for c, cid in cat_ids.items()]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return [VOC_NAMES[c] for c, _ in sorted(cat_ids.items(), key=lambda kv: kv[1])], expected


def test_coco_json_dataset_reads_rle_and_polygons_and_builds_a_memory(tmp_path):
    voc = real_voc()
    ids = voc_photos(voc, tmp_path / "photos", 3)
    names, expected = _coco_json(voc, ids, tmp_path / "labels.json")
    dataset = load_dataset("coco-json", tmp_path / "photos", str(tmp_path / "labels.json"))
    assert list(dataset.class_names) == names == ["aeroplane", "person", "background", "chair"]
    assert [s.id for s in dataset.samples] == ids
    for i, image_id in enumerate(ids):
        image, mask = dataset.load_sample(i)
        assert np.array_equal(mask, expected[image_id]) and image.size == mask.shape[::-1]
    from hummingbird.datasets.validation import scan_dataset

    report = scan_dataset("coco-json", str(tmp_path / "photos"), str(tmp_path / "labels.json"), progress=False)
    counted = sum(int((m != 255).sum()) for m in expected.values())
    assert report.ok and report.images == 3 and sum(report.class_pixels.values()) == counted
    (tmp_path / "bad.json").write_text("{\"images\": 3}")
    with pytest.raises(DatasetError, match="bad.json"):
        load_dataset("coco-json", tmp_path / "photos", str(tmp_path / "bad.json"))

    weights = real_weights()
    done = subprocess.run([sys.executable, "-m", "hummingbird", "build-memory", "--dataset", "coco-json",
                           "--annotations", str(tmp_path / "labels.json"), "--images", str(tmp_path / "photos"),
                           "--backbone", weights[0], "--weights", str(weights[1]), "--input-size", "224",
                           "--no-augment", "--num-workers", "0", "--no-progress", "--out",
                           str(tmp_path / "bank.safetensors")], check=False, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    from hummingbird.memory.bank import MemoryBank

    bank = MemoryBank.load(tmp_path / "bank.safetensors")
    assert bank.class_names == names and bank.metadata["image_ids"] == ids
    wrong = subprocess.run([sys.executable, "-m", "hummingbird", "build-memory", "--dataset", "voc", "--annotations",
                            str(tmp_path / "labels.json"), "--out", str(tmp_path / "x.safetensors")],
                           check=False, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert wrong.returncode == 2 and "--annotations is read with --dataset coco-json" in wrong.stderr


def test_labelme_folder_dataset(tmp_path):
    voc = real_voc()
    ids = voc_photos(voc, tmp_path, 2)
    shapes = [
        [{"label": "cat", "shape_type": "polygon", "points": [[10, 10], [110, 10], [110, 60], [10, 60]]},
         {"label": "dog", "shape_type": "rectangle", "points": [[50, 40], [20, 100]]}],
        [{"label": "dog", "shape_type": "circle", "points": [[100, 100], [130, 100]]},
         {"label": "cat", "points": [[0, 0], [40, 0], [0, 40]]}],
    ]
    for image_id, drawn in zip(ids, shapes):
        (tmp_path / f"{image_id}.json").write_text(json.dumps({"imagePath": f"{image_id}.jpg", "shapes": drawn}))
    dataset = load_dataset("labelme", tmp_path, "all")
    assert list(dataset.class_names) == ["cat", "dog"]
    _, first = dataset.load_sample(0)
    assert first[30, 100] == 0 and first[80, 35] == 1 and first[200, 300] == 255 and first[45, 35] == 1
    _, second = dataset.load_sample(1)
    assert second[100, 100] == 1 and second[5, 5] == 0 and second[120, 140] == 255
    (tmp_path / "classes.txt").write_text("dog\ncat\nbird\n")
    assert list(load_dataset("labelme", tmp_path, "all").class_names) == ["dog", "cat", "bird"]
    assert load_dataset("labelme", tmp_path, "all").load_sample(0)[1][30, 100] == 1
    (tmp_path / "classes.txt").write_text("dog\n")
    with pytest.raises(DatasetError, match="label 'cat', not in the class list"):
        load_dataset("labelme", tmp_path, "all").load_sample(0)


def test_label_app_opens_a_coco_json_as_its_starting_annotations(tmp_path):
    voc, weights = real_voc(), real_weights()
    ids = voc_photos(voc, tmp_path / "photos", 3)
    names, expected = _coco_json(voc, ids[:2], tmp_path / "labels.json")
    from hummingbird.app.session import Labeller

    labeller = Labeller(tmp_path / "photos", annotations=tmp_path / "labels.json", first_pass=False,
                        backbone=weights[0], weights=str(weights[1]), input_size=224)
    try:
        assert labeller.class_names == names
        for image_id in ids[:2]:
            assert np.array_equal(labeller.state.read(image_id), expected[image_id])
        assert labeller.segmenter.bank.metadata["image_ids"] == ids[:2]
        assert [i["status"] for i in labeller.images()] == ["annotated", "annotated", "unlabelled"]  # no pass yet
        width, height = labeller.size(f"{ids[2]}.jpg")
        assert labeller.prediction(f"{ids[2]}.jpg")[0].shape == (height, width)
        assert [i["status"] for i in labeller.images()] == ["annotated", "annotated", "predicted"]
    finally:
        labeller.close()
    shutil.rmtree(tmp_path / "photos" / ".hummingbird")


def test_label_app_classes_renamed_in_the_page_survive_a_restart_with_the_same_classes_file(tmp_path):
    voc, weights = real_voc(), real_weights()
    voc_photos(voc, tmp_path / "photos", 1)
    from hummingbird.app.session import Labeller

    keywords = {"first_pass": False, "backbone": weights[0], "weights": str(weights[1]), "input_size": 224}
    labeller = Labeller(tmp_path / "photos", ["background", "aeroplane"], **keywords)
    labeller.set_classes(["background", "plane", "cat"])
    labeller.close()
    again = Labeller(tmp_path / "photos", ["background", "aeroplane"], **keywords)
    assert again.class_names == ["background", "plane", "cat"]
    again.close()
    grown = Labeller(tmp_path / "photos", ["background", "aeroplane", "cat", "dog", "cat"], **keywords)
    assert grown.class_names == ["background", "plane", "cat", "dog"]  # the file's lines beyond the state's
    assert len(grown.colours) == 4
    grown.close()
