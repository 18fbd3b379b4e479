"""RGB-D layouts (DenseDepth CSV, BTS sync, a generic folder), the NYU border, invalid pixels carried as a
mask, and every bad input refused in one line naming the file; the real NYU pairs of ../shared when present."""

import numpy as np
import pytest
from PIL import Image
from realdata import real_nyu

from hummingbird.catalog import DEPTH_DATASET_KINDS
from hummingbird.datasets.depth import (
    DEPTH_DATASETS,
    NYU_CONTENT_BOX,
    DepthExamples,
    open_depth_dataset,
    read_depth_png,
)
from hummingbird.errors import ConfigError, DatasetError


def rgb(path, size=(32, 24), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def depth16(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(path)


def write_densedepth(root, n=3, size=(32, 24)):
    lines = []
    for i in range(n):
        rgb(root / "nyu2_test" / f"{i:05d}_colors.png", size, i)
        depth16(root / "nyu2_test" / f"{i:05d}_depth.png", np.full((size[1], size[0]), 1000 + 500 * i))
        lines.append(f"{i:05d}_colors.png,{i:05d}_depth.png")
    (root / "nyu2_test.csv").write_text("\n".join(lines) + "\n")
    return root


def test_densedepth_layout_reads_millimetres_and_ids(tmp_path):
    dataset = open_depth_dataset("nyu", write_densedepth(tmp_path / "nyu"), "test")
    assert dataset.layout == "densedepth" and dataset.ids == ["00000", "00001", "00002"]
    sample = dataset[2]
    assert sample.depth.dtype == np.float32 and sample.depth.shape == (24, 32) and sample.valid.all()
    assert np.all(sample.depth == 2.0) and sample.image.size == (32, 24)
    assert sample.box == (0, 24, 0, 32)  # only 640x480 frames have NYU's border


def test_densedepth_paths_as_densedepths_zip_writes_them(tmp_path):
    """``data/nyu2_test.csv`` listing ``data/nyu2_test/x.png``, the data folder given or its parent."""
    root = tmp_path / "unzipped"
    rgb(root / "data" / "nyu2_test" / "00007_colors.png")
    depth16(root / "data" / "nyu2_test" / "00007_depth.png", np.full((24, 32), 700))
    (root / "data" / "nyu2_test.csv").write_text("data/nyu2_test/00007_colors.png,data/nyu2_test/00007_depth.png\n")
    for given in (root, root / "data"):
        assert open_depth_dataset("nyu", given, "test")[0].depth[0, 0] == pytest.approx(0.7)


def test_densedepth_train_split_reads_its_8bit_depth_and_scene_ids(tmp_path):
    root = tmp_path / "nyu"
    rgb(root / "nyu2_train" / "kitchen_0001" / "1.jpg")
    Image.fromarray(np.full((24, 32), 51, np.uint8)).save(root / "nyu2_train" / "kitchen_0001" / "1.png")
    (root / "nyu2_train.csv").write_text("data/nyu2_train/kitchen_0001/1.jpg,data/nyu2_train/kitchen_0001/1.png\n")
    sample = open_depth_dataset("nyu", root, "train")[0]
    assert sample.id == "kitchen_0001/1" and sample.depth[0, 0] == pytest.approx(2.0)  # 51 / 255 * 10 m


def test_nyu_frames_are_cut_to_the_region_inside_the_white_border(tmp_path):
    root = write_densedepth(tmp_path / "nyu", n=1, size=(640, 480))
    assert open_depth_dataset("nyu", root, "test")[0].box == NYU_CONTENT_BOX == (8, 472, 10, 630)


def write_bts(root, split_folder, zeros=0.3):
    rng = np.random.default_rng(5)
    for scene, number in (("bathroom_0001", "00045"), ("kitchen_0002", "00010")):
        folder = root / split_folder / scene
        rgb(folder / f"rgb_{number}.jpg")
        values = rng.integers(700, 9000, (24, 32))
        values[rng.random(values.shape) < zeros] = 0
        depth16(folder / f"sync_depth_{number}.png", values)
    return root


def test_bts_sync_layout_keeps_zeros_as_invalid_pixels(tmp_path):
    root = write_bts(tmp_path / "bts", "official_splits/test")
    dataset = open_depth_dataset("nyu", root, "test")
    assert dataset.layout == "bts" and dataset.ids == ["bathroom_0001/00045", "kitchen_0002/00010"]
    sample = dataset[0]
    raw = np.array(Image.open(root / "official_splits/test/bathroom_0001/sync_depth_00045.png"))
    assert np.array_equal(sample.valid, raw > 0) and 0.2 < 1 - sample.valid.mean() < 0.4
    assert np.all(sample.depth[~sample.valid] == 0)
    assert np.allclose(sample.depth[sample.valid], raw[raw > 0] / 1000)


def test_bts_filenames_file_fixes_the_list_and_skips_frames_without_depth(tmp_path):
    root = write_bts(tmp_path / "bts", "sync")
    (root / "nyudepthv2_train_files_with_gt.txt").write_text(
        "/kitchen_0002/rgb_00010.jpg /kitchen_0002/sync_depth_00010.png 518.8579\n"
        "/kitchen_0002/rgb_00011.jpg None 518.8579\n")
    assert open_depth_dataset("nyu", root, "train").ids == ["kitchen_0002/00010"]


def test_folder_layout_with_a_depth_scale_and_split_folders(tmp_path):
    root = tmp_path / "kitti"
    rgb(root / "images" / "val" / "a.png")
    depth16(root / "depth" / "val" / "a.png", np.full((24, 32), 2560))
    dataset = open_depth_dataset("folder", root, "val", depth_scale=256)
    assert dataset.ids == ["a"] and dataset[0].depth[0, 0] == pytest.approx(10.0)
    assert dataset.describe()["depth_units_per_metre"] == 256 and dataset.describe()["border"] is None
    (root / "splits").mkdir()
    rgb(root / "images" / "b.png")
    depth16(root / "depth" / "b.png", np.full((24, 32), 1000))
    (root / "splits" / "test.txt").write_text("b\n")
    assert open_depth_dataset("folder", root, "test").ids == ["b"]


def test_fileset_restricts_and_orders_the_pairs(tmp_path):
    root = write_densedepth(tmp_path / "nyu")
    (tmp_path / "ids.txt").write_text("00002\n00000\n")
    assert open_depth_dataset("nyu", root, "test", fileset=tmp_path / "ids.txt").ids == ["00002", "00000"]


def test_the_catalog_names_the_layouts_this_module_reads():
    assert DEPTH_DATASETS == DEPTH_DATASET_KINDS == ("nyu", "folder")


# ----------------------------------------------------------------------------- bad input, one line each

def _refused(match, call):
    with pytest.raises(DatasetError, match=match) as caught:
        call()
    assert "\n" not in str(caught.value)


def test_an_8bit_depth_png_is_refused_naming_the_file(tmp_path):
    root = write_densedepth(tmp_path / "nyu")
    Image.fromarray(np.full((24, 32), 30, np.uint8)).save(root / "nyu2_test" / "00001_depth.png")
    dataset = open_depth_dataset("nyu", root, "test")
    _refused(r"00001_depth.png: depth PNG is 8-bit \(mode L\); expected 16-bit depth values", lambda: dataset[1])


def test_colour_and_float_depth_images_are_refused(tmp_path):
    rgb(tmp_path / "colour.png")
    _refused(r"colour.png: depth image has 3 channels \(mode RGB\)", lambda: read_depth_png(tmp_path / "colour.png", 1000))
    Image.fromarray(np.ones((4, 4), np.float32)).save(tmp_path / "float.tif")
    _refused(r"float.tif: depth image is floating point", lambda: read_depth_png(tmp_path / "float.tif", 1000))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    _refused(r"broken.png: cannot read depth image", lambda: read_depth_png(tmp_path / "broken.png", 1000))


def test_all_invalid_depth_is_refused(tmp_path):
    root = write_densedepth(tmp_path / "nyu")
    depth16(root / "nyu2_test" / "00000_depth.png", np.zeros((24, 32)))
    _refused(r"00000_depth.png: no valid depth pixel \(every value is 0\)", lambda: open_depth_dataset(
        "nyu", root, "test")[0])


def test_image_and_depth_of_different_sizes_are_refused(tmp_path):
    root = write_densedepth(tmp_path / "nyu")
    depth16(root / "nyu2_test" / "00002_depth.png", np.full((20, 32), 1000))
    _refused(r"00002_depth.png: depth is 32x20 but its image 00002_colors.png is 32x24; they must be pixel-aligned",
             lambda: open_depth_dataset("nyu", root, "test")[2])


def test_empty_and_missing_folders_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    _refused(r"empty: dataset folder is empty$", lambda: open_depth_dataset("nyu", tmp_path / "empty", "test"))
    _refused(r"nowhere: dataset folder does not exist", lambda: open_depth_dataset("folder", tmp_path / "nowhere",
                                                                                    "all"))
    (tmp_path / "noimages" / "images").mkdir(parents=True)
    _refused(r"images: no images \(", lambda: open_depth_dataset("folder", tmp_path / "noimages", "all"))
    (tmp_path / "other" / "stuff").mkdir(parents=True)
    _refused(r"other: no nyu2_test.csv \(DenseDepth layout\) and no rgb_\*.jpg files \(BTS sync layout\)",
             lambda: open_depth_dataset("nyu", tmp_path / "other", "test"))


def test_layout_problems_name_the_file_and_line(tmp_path):
    root = write_densedepth(tmp_path / "nyu")
    (root / "nyu2_test.csv").write_text("00000_colors.png,00000_depth.png\nmissing_colors.png,00001_depth.png\n")
    _refused(r"nyu2_test.csv:2: listed file missing_colors.png not found", lambda: open_depth_dataset("nyu", root, "test"))
    (root / "nyu2_test.csv").write_text("00000_colors.png\n")
    _refused(r"nyu2_test.csv:1: expected 'image,depth', got 1 fields", lambda: open_depth_dataset("nyu", root, "test"))
    _refused(r"no nyu2_train.csv for --split train \(this DenseDepth folder has nyu2_test.csv\)",
             lambda: open_depth_dataset("nyu", root, "train"))
    folder = tmp_path / "folder"
    rgb(folder / "images" / "a.png")
    _refused(r"depth: 1 images have no depth <id>.png: a", lambda: open_depth_dataset("folder", folder, "all"))
    _refused(r"no images/val/ folder and no splits/val.txt; use --split all",
             lambda: open_depth_dataset("folder", folder, "val"))
    depth16(folder / "depth" / "a.png", np.ones((24, 32)))
    _refused(r"--depth-scale must be positive", lambda: open_depth_dataset("folder", folder, "all", depth_scale=0))


def test_filesets_must_be_id_files_of_this_dataset(tmp_path):
    root = write_densedepth(tmp_path / "nyu")
    (tmp_path / "ids.txt").write_text("00000\n99999\n")
    _refused(r"ids.txt: 1 ids are not in .* \[test\]: 99999", lambda: open_depth_dataset(
        "nyu", root, "test", fileset=tmp_path / "ids.txt"))
    _refused(r"--fileset voc:1/128:42: the named file sets are segmentation id lists", lambda: open_depth_dataset(
        "nyu", root, "test", fileset="voc:1/128:42"))
    _refused(r"--dataset voc: depth datasets are nyu, folder", lambda: open_depth_dataset("voc", root, "test"))


def test_examples_in_memory_mark_nan_zero_and_negative_depth_invalid():
    depth = np.array([[1.0, np.nan], [0.0, -2.0]])
    examples = DepthExamples([np.zeros((2, 2, 3), np.uint8)], [depth])
    sample = examples[0]
    assert sample.valid.tolist() == [[True, False], [False, False]] and sample.depth.tolist() == [[1, 0], [0, 0]]
    with pytest.raises(ConfigError, match=r"^depth 0: no valid depth pixel"):
        DepthExamples([np.zeros((2, 2, 3), np.uint8)], [np.zeros((2, 2))])
    with pytest.raises(ConfigError, match=r"^depth 0: 3x2 but image 0 is 2x2"):
        DepthExamples([np.zeros((2, 2, 3), np.uint8)], [np.ones((2, 3))])
    with pytest.raises(ConfigError, match="1 images but 2 depth maps"):
        DepthExamples([np.zeros((2, 2, 3), np.uint8)], [np.ones((2, 2))] * 2)


# ----------------------------------------------------------------------------- the real NYU pairs

def test_real_densedepth_test_pairs():
    dataset = open_depth_dataset("nyu", real_nyu(), "test")
    assert len(dataset) == 30 and dataset.ids[0] == "00000"
    for i in (0, 29):
        sample = dataset[i]
        assert sample.depth.shape == (480, 640) and sample.valid.all()  # filled depth: no invalid pixel
        assert 0.5 < sample.depth.min() and sample.depth.max() <= 10.0
        top, bottom, left, right = sample.box
        pixels = np.asarray(sample.image)
        assert pixels[:4].min() > 200 and pixels[:, :4].min() > 200  # the white border, outside the box
        assert pixels[top:bottom, left:right].min(-1).mean() < 200  # the photo, inside it


def test_real_raw_sync_frames_carry_their_invalid_zeros():
    dataset = open_depth_dataset("nyu", real_nyu() / "raw_sync", "test")
    assert dataset.layout == "bts" and dataset.ids == ["00000", "00050", "00100"]
    for i in range(3):
        sample = dataset[i]
        assert 0.2 < 1 - sample.valid.mean() < 0.35 and np.all(sample.depth[~sample.valid] == 0)
        assert sample.box == NYU_CONTENT_BOX
