"""``hummingbird label`` end to end in a real headless Chromium: paint two classes on two real VOC images, see a
third image's prediction change, ask a pixel's neighbours, export; the export builds a memory and its bank
segments with the app's labels; a restarted server finds the annotations; the token and the photo folder guard
every request. Saves the page's screenshot as docs/label_app.png."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time

import numpy as np
from browser import headless_chromium
from label_server import CLASSES, ROOT, LabelServer, voc_photos, wait_until
from PIL import Image
from realdata import real_voc, real_weights


def _browser():
    return headless_chromium(1400, 820)


def _run(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "hummingbird", *args], check=False, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_label_app_in_headless_chromium(tmp_path):
    weights, voc = real_weights(), real_voc()
    browser = _browser()
    photos = tmp_path / "photos"
    ids = voc_photos(voc, photos, 6)
    names = [f"{i}.jpg" for i in ids]
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (tmp_path / "outside.jpg").write_bytes((photos / names[0]).read_bytes())
    (photos / "escape.jpg").symlink_to(tmp_path / "outside.jpg")  # a link leaving the folder: never served
    server = LabelServer(photos, tmp_path / "classes.txt", weights)
    try:
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        def hb(expr):
            return browser.execute_script(f"return window.hb && window.hb.{expr};")

        browser.get(server.url)
        wait_until(lambda: hb("ready"), 60)
        assert [e.get_attribute("data-name") for e in browser.find_elements(By.CSS_SELECTOR, ".thumb")] == names
        assert hb("open") == names[0]
        canvas = browser.find_element(By.ID, "canvas")

        def pick_class(index: int) -> None:
            browser.find_element(By.CSS_SELECTOR, f'#classes li[data-index="{index}"]').click()

        def paint(points, saves_before):
            size = browser.execute_script("const r = arguments[0].getBoundingClientRect(); "
                                          "return {width: r.width, height: r.height};", canvas)
            chain = ActionChains(browser).move_to_element_with_offset(canvas, *(int(v * s) for v, s in
                                                                                zip(points[0], (size["width"], size["height"]))))
            chain.click_and_hold()
            for (x0, y0), (x1, y1) in itertools.pairwise(points):
                chain.move_by_offset(int((x1 - x0) * size["width"]), int((y1 - y0) * size["height"]))
            chain.release().perform()
            wait_until(lambda: hb("saves") > saves_before and hb("saves") == hb("saves"), 120)
            time.sleep(0.3)

        def third_prediction() -> np.ndarray:
            return server.labels(f"/api/predictions/{names[2]}")

        # image 1: aeroplane (class 1) across the middle, background (class 0) along the top
        browser.find_element(By.ID, "brush-size").send_keys(Keys.END)  # the widest brush
        pick_class(1)
        paint([(-0.3, 0.05), (0.0, 0.1), (0.3, 0.05)], hb("saves"))
        pick_class(0)
        paint([(-0.45, -0.42), (0.0, -0.4), (0.45, -0.42)], hb("saves"))
        annotation_1 = server.labels(f"/api/annotations/{names[0]}")
        assert set(np.unique(annotation_1).tolist()) == {0, 1, 255}
        before = third_prediction()
        assert set(np.unique(before).tolist()) <= {0, 1}

        # image 2: person (class 2) over most of it, chair (class 3) in a corner
        browser.find_element(By.CSS_SELECTOR, f'.thumb[data-name="{names[1]}"]').click()
        wait_until(lambda: hb("open") == names[1] and hb("predictionLoads") >= 1)
        pick_class(2)
        paint([(-0.4, -0.3), (0.4, -0.3), (0.4, 0.0), (-0.4, 0.0), (-0.4, 0.3), (0.4, 0.3)], hb("saves"))
        pick_class(3)
        paint([(0.3, 0.42), (0.45, 0.42)], hb("saves"))
        assert set(np.unique(server.labels(f"/api/annotations/{names[1]}")).tolist()) == {2, 3, 255}
        after = third_prediction()
        assert (after != before).mean() > 0.01  # the third image's labels follow the new memory

        # the third image in the page: its prediction is shown and statuses are right
        browser.find_element(By.CSS_SELECTOR, f'.thumb[data-name="{names[2]}"]').click()
        loads = hb("predictionLoads")
        wait_until(lambda: hb("open") == names[2] and hb("predictionLoads") > loads - 1 and hb("prediction"))
        wait_until(lambda: hb("prediction") and hb("prediction.length") == after.size)
        shown = np.array(browser.execute_script("return Array.from(window.hb.prediction);"), np.uint8)
        assert np.array_equal(shown.reshape(after.shape), after)
        statuses = {e.get_attribute("data-name"): e.get_attribute("data-status")
                    for e in browser.find_elements(By.CSS_SELECTOR, ".thumb")}
        assert statuses[names[0]] == statuses[names[1]] == "annotated" and statuses[names[2]] == "predicted"
        assert "escape.jpg" not in statuses

        # alt-click a pixel: the neighbour panel lists the nearest memory patches with crops, labels, similarities
        ActionChains(browser).move_to_element(canvas).key_down(Keys.ALT).click().key_up(Keys.ALT).perform()
        wait_until(lambda: hb("neighbourLoads") >= 1)
        rows = browser.find_elements(By.CSS_SELECTOR, "#neighbours .neighbour")
        assert len(rows) == 8
        assert all(r.find_element(By.CSS_SELECTOR, ".nlabel").text in CLASSES for r in rows)
        assert "similarity" in rows[0].text
        (ROOT / "docs").mkdir(exist_ok=True)
        browser.save_screenshot(str(ROOT / "docs" / "label_app.png"))

        # confidence view and "least confident first"
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("c")
        wait_until(lambda: hb("confidenceImage"), 60)
        browser.find_element(By.ID, "sort-confidence").click()
        wait_until(lambda: "least confident first" in browser.find_element(By.ID, "message").text, 60)
        thumbs = browser.find_elements(By.CSS_SELECTOR, ".thumb")
        scores = [float(t.find_element(By.CSS_SELECTOR, ".badge").text.split()[1].rstrip("%"))
                  for t in thumbs if t.get_attribute("data-status") == "predicted"]
        assert len(scores) == 4 and scores == sorted(scores)
        assert [t.get_attribute("data-status") for t in thumbs][:4] == ["predicted"] * 4
        body.send_keys("c")

        # the tools on a sixth image: polygon by clicks, eraser, undo / redo, accept the prediction
        browser.find_element(By.CSS_SELECTOR, f'.thumb[data-name="{names[5]}"]').click()
        wait_until(lambda: hb("open") == names[5] and hb("prediction"))
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("l")
        pick_class(2)
        rect = browser.execute_script("const r = arguments[0].getBoundingClientRect(); "
                                      "return {width: r.width, height: r.height};", canvas)
        corners = [(-0.3, -0.3), (0.3, -0.3), (0.3, 0.3), (-0.3, 0.3)]
        saves = hb("saves")
        for i, (x, y) in enumerate(corners):
            chain = ActionChains(browser).move_to_element_with_offset(canvas, int(x * rect["width"]),
                                                                     int(y * rect["height"]))
            (chain.double_click() if i == len(corners) - 1 else chain.click()).perform()
        wait_until(lambda: hb("saves") > saves, 60)
        time.sleep(0.3)
        polygon = server.labels(f"/api/annotations/{names[5]}")
        h, w = polygon.shape
        assert polygon[h // 2, w // 2] == 2 and polygon[5, 5] == 255 and 0.25 < (polygon == 2).mean() < 0.5
        body.send_keys("e")
        paint([(-0.45, 0.0), (0.45, 0.0)], hb("saves"))
        erased = server.labels(f"/api/annotations/{names[5]}")
        assert erased[h // 2, w // 2] == 255 and (erased == 2).sum() < (polygon == 2).sum()
        for keys, expected in ((Keys.CONTROL + "z", polygon), (Keys.CONTROL + "y", erased)):
            saves = hb("saves")
            body.send_keys(keys)
            wait_until(lambda: hb("saves") > saves, 60)  # noqa: B023 - used at once
            time.sleep(0.3)
            assert np.array_equal(server.labels(f"/api/annotations/{names[5]}"), expected)
        saves = hb("saves")
        body.send_keys("a")  # accept the prediction into the unlabelled pixels
        wait_until(lambda: hb("saves") > saves, 60)
        time.sleep(0.3)
        accepted = server.labels(f"/api/annotations/{names[5]}")
        assert (accepted != 255).all() and np.array_equal(accepted[erased != 255], erased[erased != 255])

        # export from the page
        out = tmp_path / "export"
        field = browser.find_element(By.ID, "export-dir")
        field.send_keys(str(out))
        browser.find_element(By.ID, "export").click()
        wait_until(lambda: hb("exports") >= 1, 120)
        result = json.loads((out / "export.json").read_text())
        assert sorted(result["annotated"]) == sorted([*ids[:2], ids[5]])
        assert (out / "ImageSets/Segmentation/train.txt").read_text().split() == result["annotated"]
        assert np.array_equal(np.array(Image.open(out / "SegmentationClass" / f"{ids[0]}.png")), annotation_1)
        assert (out / "classes.txt").read_text().split() == CLASSES
        coco = json.loads((out / "annotations.json").read_text())
        assert [c["name"] for c in coco["categories"]] == CLASSES and coco["annotations"]
        app_labels = {i: server.labels(f"/api/predictions/{i}.jpg") for i in ids[2:5]}
    finally:
        browser.quit()
        server.stop()

    # the export is a VOC dataset: checked, built into a memory; the exported bank segments with the app's labels
    _run("check-dataset", str(out), "--dataset", "voc", "--split", "train", "--no-progress")
    _run("build-memory", "--dataset", "voc", "--data-root", str(out), "--split", "train", "--no-augment",
         "--backbone", weights[0], "--weights", str(weights[1]), "--input-size", "224", "--out",
         str(tmp_path / "built.safetensors"), "--no-progress", "--num-workers", "0")
    _run("segment", "--bank", result["bank"], "--images", *[str(photos / f"{i}.jpg") for i in ids[2:5]],
         "--out-dir", str(tmp_path / "segmented"), "--resize-mode", "square", "--no-progress")
    for i in ids[2:5]:
        segmented = np.array(Image.open(tmp_path / "segmented" / f"{i}.png"))
        assert np.array_equal(segmented, app_labels[i])
        assert np.array_equal(np.array(Image.open(out / "predictions" / f"{i}.png")), app_labels[i])
    from hummingbird.memory.bank import MemoryBank

    built, exported = MemoryBank.load(tmp_path / "built.safetensors"), MemoryBank.load(result["bank"])
    assert built.class_names == exported.class_names == CLASSES and len(built) == len(exported)

    # a restarted server finds the annotations and the same memory; token and folder guard every request
    again = LabelServer(photos, tmp_path / "classes.txt", weights)
    try:
        assert np.array_equal(again.labels(f"/api/annotations/{names[0]}"), annotation_1)
        assert np.array_equal(again.labels(f"/api/predictions/{names[2]}"), app_labels[ids[2]])
        assert again.call("GET", "/api/images", token=False)[0] == 401
        assert again.call("GET", "/api/images?token=wrong", token=False)[0] == 401
        assert again.call("GET", f"/api/images?token={again.token}", token=False)[0] == 200
        for path in ("/api/images/..%2F..%2Fetc%2Fpasswd", "/api/images/%2Fetc%2Fpasswd", "/api/images/escape.jpg",
                     "/api/images/..%2Foutside.jpg", "/static/..%2F..%2F__init__.py", "/api/annotations/..%2Fx"):
            status, body, _ = again.call("GET", path)
            assert status == 404 and b"outside" not in body and b"root:" not in body, (path, status)
    finally:
        again.stop()
