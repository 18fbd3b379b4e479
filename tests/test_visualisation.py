"""Patch ↔ pixel geometry, neighbour grids (checked pixel by pixel), overlays, and the offline viewer."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from browser import headless_chromium
from PIL import Image

from hummingbird.cli.main import main
from hummingbird.datasets.palettes import ade20k_palette, distinct_palette, palette_for, voc_palette
from hummingbird.memory.bank import MemoryBank
from hummingbird.visual.geometry import patch_box_in_source, point_to_patch
from hummingbird.visual.viewer import read_viewer_data, write_viewer_data

COMMON = ["--weights", "random", "--num-workers", "0", "--no-progress"]
GREY, RED = (128, 128, 128), (230, 20, 20)


@pytest.mark.parametrize("patch", [14, 16])
@pytest.mark.parametrize("grid", [2, 4, 7])
def test_patch_boxes_tile_the_source_and_invert(patch, grid):
    size = patch * grid
    # whole image of another size: boxes tile it exactly and their centres map back to the patch
    width, height = 3 * size // 2, size // 2 + 5
    view = torch.tensor([0, 0, height, width, 0])
    boxes = [[patch_box_in_source(view, r, c, patch, size) for c in range(grid)] for r in range(grid)]
    assert boxes[0][0][:2] == (0, 0) and boxes[-1][-1][2:] == pytest.approx((width, height))
    for r in range(grid):
        for c in range(grid):
            x0, y0, x1, y1 = boxes[r][c]
            assert (x1 - x0, y1 - y0) == pytest.approx((width / grid, height / grid))
            assert point_to_patch((x0 + x1) / 2, (y0 + y1) / 2, (width, height), patch, size) == (r, c)
    # identity view: boxes are the patch's own pixels
    same = torch.tensor([0, 0, size, size, 0])
    assert patch_box_in_source(same, 1, grid - 1, patch, size) == (size - patch, patch, size, 2 * patch)


def test_patch_box_of_cropped_and_flipped_view():
    # view shows source rows 10..74, columns 20..84 (64 px), flipped, at input 32 with patch 16 (scale 2)
    view = torch.tensor([10, 20, 64, 64, 1])
    assert patch_box_in_source(view, 0, 0, 16, 32) == (52, 10, 84, 42)  # input's left column = view's right half
    assert patch_box_in_source(view, 1, 1, 16, 32) == (20, 42, 52, 74)


def test_point_outside_image_is_refused():
    with pytest.raises(ValueError, match=r"point \(100, 5\) is outside the 64x48 image"):
        point_to_patch(100, 5, (64, 48), 16, 64)


def test_palettes():
    assert voc_palette(3).tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    ade = ade20k_palette()
    assert ade.shape == (150, 3) and ade[0].tolist() == [120, 120, 120] and len({tuple(c) for c in ade}) >= 148
    custom = distinct_palette(30)
    assert len({tuple(c) for c in custom}) == 30
    assert palette_for("folder", 5)[255].tolist() == [255, 255, 255]


@pytest.fixture
def marked_dataset(tmp_path):
    """Grey 64-px images; image k has a red 16-px square at patch (1, 2) in class 1, else class 0."""
    root = tmp_path / "marked"
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(3):
        image = np.full((64, 64, 3), GREY, np.uint8) + rng.integers(0, 6, (64, 64, 3)).astype(np.uint8)
        mask = np.zeros((64, 64), np.uint8)
        image[16:32, 32:48], mask[16:32, 32:48] = RED, 1
        Image.fromarray(image).save(root / "images" / f"m{k}.png")
        Image.fromarray(mask).save(root / "masks" / f"m{k}.png")
    (root / "classes.txt").write_text("grey\nred\n")
    bank = tmp_path / "bank.safetensors"
    assert main(["build-memory", "--dataset", "folder", "--data-root", str(root), "--split", "all",
                 "--backbone", "dino_vits16", "--input-size", "64", "--no-augment", "--out", str(bank), *COMMON]) == 0
    return root, bank


def test_neighbour_grid_shows_the_expected_source_crops(marked_dataset, tmp_path):
    root, bank = marked_dataset
    out = tmp_path / "nb.png"
    assert main(["neighbours", "--bank", str(bank), "--image", str(root / "images" / "m1.png"), "--patch", "1,2",
                 "--k", "1", "--out", str(out), *COMMON]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    (first,) = record["neighbours"]
    assert first["image_id"] == "m1" and first["box"] == [32, 16, 48, 32] and first["label_name"] == "red"
    assert first["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert record["query_box"] == [32, 16, 48, 32]
    picture = np.asarray(Image.open(out).convert("RGB")).astype(int)
    # the single tile sits right of the query (enlarged to 256 px) at x = 256 + 16, y = 24; 128 px, 3x context
    tile = picture[24:24 + 128, 272:272 + 128]
    centre, corner = tile[54:74, 54:74].reshape(-1, 3), tile[4:20, 4:20].reshape(-1, 3)
    assert np.abs(centre - RED).max() < 40  # the red patch itself
    assert np.abs(corner - GREY).max() < 40  # its grey surroundings
    # the yellow outline on the box's top edge: 128/48 px per source px, box top at 16 px below the crop's top
    edge = tile[40:46, 64]
    assert (np.abs(edge - (255, 255, 0)).max(1) < 60).any(), edge


def test_neighbour_by_point_and_bad_patch(marked_dataset, tmp_path, capsys):
    root, bank = marked_dataset
    assert main(["neighbours", "--bank", str(bank), "--image", str(root / "images" / "m0.png"), "--point", "40,20",
                 "--k", "2", "--out", str(tmp_path / "p.png"), *COMMON]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["patch"] == [1, 2]
    code = main(["neighbours", "--bank", str(bank), "--image", str(root / "images" / "m0.png"), "--patch", "9,9",
                 "--out", str(tmp_path / "x.png"), *COMMON])
    assert code == 2 and "--patch 9,9 is outside the 4x4 patch grid" in capsys.readouterr().err


def test_segment_overlay_has_legend_of_present_classes(marked_dataset, tmp_path):
    root, bank = marked_dataset
    out = tmp_path / "seg"
    assert main(["segment", "--bank", str(bank), "--images", str(root / "images" / "m2.png"), "--overlay",
                 "--k", "1", "--out-dir", str(out), *COMMON]) == 0
    labels = np.array(Image.open(out / "m2.png"))
    assert (labels[20:28, 36:44] == 1).all() and (labels[:8] == 0).all()  # bilinear upsampling rounds edges
    picture = np.asarray(Image.open(out / "m2_overlay.png").convert("RGB"))
    assert picture.shape[1] > 64  # legend panel to the right of the 64-px overlay
    palette = distinct_palette(2)
    legend = picture[:, 64:].reshape(-1, 3)
    for colour in palette:  # a swatch of each present class
        assert (np.abs(legend.astype(int) - colour).max(1) < 3).sum() > 50


@pytest.fixture
def viewer_dir(marked_dataset, tmp_path):
    root, bank = marked_dataset
    out = tmp_path / "viewer"
    assert main(["viewer", "--bank", str(bank), "--images", str(root / "images" / "m0.png"),
                 str(root / "images" / "m2.png"), "--out", str(out), "--k", "4", *COMMON]) == 0
    return out, bank


def test_viewer_data_round_trips_and_matches_the_bank(viewer_dir, tmp_path):
    out, bank_path = viewer_dir
    data = read_viewer_data(out / "data.js")
    write_viewer_data(tmp_path / "again.js", data)
    assert read_viewer_data(tmp_path / "again.js") == data
    assert (out / "index.html").is_file() and "http" not in (out / "index.html").read_text().replace(
        "http-equiv", "")  # nothing fetched from the network
    bank = MemoryBank.load(bank_path)
    q = data["queries"][0]
    assert q["grid"] == [4, 4] and len(q["neighbours"]) == 16 * 4 == len(q["similarities"])
    red_patch = (1 * 4 + 2) * 4
    first = data["memory"][q["neighbours"][red_patch]]
    assert data["classes"][first[5]]["name"] == "red" and first[1:5] == [32, 16, 48, 32]
    assert all((out / s["file"]).is_file() for s in data["sources"])
    assert [c["name"] for c in data["classes"]] == bank.class_names


def _browser():
    return headless_chromium(1300, 760)


@pytest.fixture(scope="module")
def noise_bank(tmp_path_factory):
    """A bank of noise images with random 3-class block masks (random weights): neighbours disagree, so the
    decoder's k changes the labels (k = 8 and k = 30 differ on some pixels)."""
    tmp = tmp_path_factory.mktemp("noise")
    root = tmp / "noise"
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "images" / f"n{i}.png")
        blocks = np.kron(rng.integers(0, 3, (4, 4)), np.ones((16, 16))).astype(np.uint8)
        Image.fromarray(blocks).save(root / "masks" / f"n{i}.png")
    (root / "classes.txt").write_text("a\nb\nc\n")
    bank = tmp / "bank.safetensors"
    assert main(["build-memory", "--dataset", "folder", "--data-root", str(root), "--split", "all", "--backbone",
                 "dino_vits16", "--input-size", "64", "--out", str(bank), *COMMON]) == 0
    return root, bank


def _segment_labels(bank, image, out, *extra) -> np.ndarray:
    assert main(["segment", "--bank", str(bank), "--images", str(image), "--out-dir", str(out), *extra, *COMMON]) == 0
    return np.array(Image.open(out / f"{image.stem}.png"))


def test_neighbours_and_viewer_draw_segments_label_map_whatever_the_neighbours_shown(noise_bank, tmp_path):
    from hummingbird import Segmenter

    root, bank = noise_bank
    image = root / "images" / "n5.png"
    labels = _segment_labels(bank, image, tmp_path / "seg")
    with_8 = _segment_labels(bank, image, tmp_path / "seg8", "--k", "8")
    assert (labels != with_8).any()  # on this bank the decoder's k matters
    palette = distinct_palette(3)
    for shown in ("8", "40"):  # fewer and more than the decoder's 30
        out = tmp_path / f"viewer{shown}"
        assert main(["viewer", "--bank", str(bank), "--images", str(image), "--out", str(out), "--k", shown,
                     *COMMON]) == 0
        drawn = np.asarray(Image.open(out / "images" / "query000_labels.png").convert("RGB"))
        assert np.array_equal(drawn, palette[labels])  # pixel for pixel segment's label map
        data = read_viewer_data(out / "data.js")
        assert data["k"] == int(shown) and data["decoder_k"] == 30
        assert len(data["queries"][0]["neighbours"]) == 16 * int(shown)
    # neighbours: the picture is the one drawn from segment's label map
    out = tmp_path / "nb.png"
    assert main(["neighbours", "--bank", str(bank), "--image", str(image), "--patch", "1,1", "--k", "8",
                 "--out", str(out), *COMMON]) == 0
    segmenter = Segmenter.load(bank)
    query = segmenter.query_neighbours(image, patch=(1, 1), k=8)
    query.labels = labels
    assert len(query.neighbours) == 8
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(segmenter.figure(query)))
    # the decoder's own k is --decoder-k, as segment's --k
    assert main(["viewer", "--bank", str(bank), "--images", str(image), "--out", str(tmp_path / "v8"), "--k", "4",
                 "--decoder-k", "8", *COMMON]) == 0
    drawn = np.asarray(Image.open(tmp_path / "v8" / "images" / "query000_labels.png").convert("RGB"))
    assert np.array_equal(drawn, palette[with_8])


def test_viewer_in_headless_chromium_shows_k_neighbours_with_bank_labels(viewer_dir, tmp_path):
    out, bank_path = viewer_dir
    browser = _browser()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        browser.get(Path(out / "index.html").resolve().as_uri())
        image = browser.find_element(By.ID, "query")
        WebDriverWait(browser, 10).until(lambda b: b.execute_script("return arguments[0].complete", image))
        rect = image.rect
        # click the centre of patch (1, 2) of the 4x4 grid
        dx, dy = rect["width"] * (2.5 / 4 - 0.5), rect["height"] * (1.5 / 4 - 0.5)
        ActionChains(browser).move_to_element_with_offset(image, int(dx), int(dy)).click().perform()
        WebDriverWait(browser, 10).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#panel .neighbour")) == 4)
        entries = browser.find_elements(By.CSS_SELECTOR, "#panel .neighbour")
        shown = [(int(e.get_attribute("data-memory")), e.get_attribute("data-label")) for e in entries]
        browser.save_screenshot(str(tmp_path / "viewer.png"))
        assert "row 1, column 2" in browser.find_element(By.ID, "status").text
        # the label-map checkbox really hides the label map, and shows it again
        labels, box = browser.find_element(By.ID, "labels"), browser.find_element(By.ID, "show-labels")
        assert labels.is_displayed()
        box.click()
        assert not labels.is_displayed() and labels.size["height"] == 0
        browser.save_screenshot(str(tmp_path / "hidden.png"))
        box.click()
        assert labels.is_displayed()
    finally:
        browser.quit()
    data = read_viewer_data(out / "data.js")
    bank = MemoryBank.load(bank_path)
    expected = data["queries"][0]["neighbours"][(1 * 4 + 2) * 4:(1 * 4 + 2) * 4 + 4]
    assert [m for m, _ in shown] == expected
    for ref, label in shown:
        assert label == bank.class_names[data["memory"][ref][5]]
    assert shown[0][1] == "red"
    assert (tmp_path / "viewer.png").stat().st_size > 10_000


def test_viewer_legend_in_headless_chromium_names_colours_and_shares(viewer_dir):
    out, bank_path = viewer_dir
    data = read_viewer_data(out / "data.js")
    browser = _browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    shown = {}
    try:
        browser.get(Path(out / "index.html").resolve().as_uri())
        for q in range(len(data["queries"])):
            Select(browser.find_element(By.ID, "query-select")).select_by_index(q)
            WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#legend .legend-entry"))
            shown[q] = [(e.find_element(By.CLASS_NAME, "name").text,
                         e.find_element(By.CLASS_NAME, "swatch").value_of_css_property("background-color"),
                         e.find_element(By.CLASS_NAME, "share").text)
                        for e in browser.find_elements(By.CSS_SELECTOR, "#legend .legend-entry")]
    finally:
        browser.quit()
    bank = MemoryBank.load(bank_path)
    palette = distinct_palette(bank.num_classes)
    for q, entries in shown.items():
        # the truth, read from the page's own label-map picture: pixels of each class colour
        colours = np.asarray(Image.open(out / data["queries"][q]["labels_file"]).convert("RGB")).reshape(-1, 3)
        expected = []
        for c, name in enumerate(bank.class_names):
            share = float((colours == palette[c]).all(1).mean())
            if share > 0:
                expected.append((share, name, "rgba({}, {}, {}, 1)".format(*palette[c].tolist())))
        expected.sort(key=lambda e: -e[0])
        assert [(n, colour) for n, colour, _ in entries] == [(n, colour) for _, n, colour in expected]
        assert [float(s.rstrip(" %")) for _, _, s in entries] == pytest.approx([100 * s for s, _, _ in expected],
                                                                             abs=0.051)
    assert {name for name, _, _ in shown[0]} == {"grey", "red"}  # m0 has its red square
