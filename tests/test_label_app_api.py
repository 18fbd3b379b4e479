"""The label app's HTTP API on a real server process and real VOC images: versions and 409s, concurrent
writes, bad bodies (wrong size, values beyond the classes, not a PNG, too large), classes, and a ``kill -9``
in the middle of saves that leaves a readable state the restarted app resumes from."""

from __future__ import annotations

import http.client
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from label_server import CLASSES, LabelServer, png_bytes, voc_mask, voc_photos
from PIL import Image
from realdata import real_voc, real_weights


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    weights, voc = real_weights(), real_voc()
    folder = tmp_path_factory.mktemp("label-api")
    ids = voc_photos(voc, folder / "photos", 4)
    (folder / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    server = LabelServer(folder / "photos", folder / "classes.txt", weights)
    yield server, ids, voc, folder, weights
    server.stop()


def test_prediction_before_any_annotation_is_a_clear_409(served):
    server, ids, *_ = served
    status, body = server.json("GET", f"/api/predictions/{ids[1]}.jpg")
    assert status == 409 and "nothing is annotated yet" in body["error"]
    status, images = server.json("GET", "/api/images")
    assert status == 200 and [i["name"] for i in images] == [f"{i}.jpg" for i in ids]
    assert {i["status"] for i in images} == {"unlabelled"}
    assert all(i["width"] > 0 and i["height"] > 0 for i in images)


def test_put_versions_and_stale_writes(served):
    server, ids, voc, *_ = served
    mask = voc_mask(voc, ids[0])
    name = f"{ids[0]}.jpg"
    status, body, _ = server.call("PUT", f"/api/annotations/{name}", png_bytes(mask))
    assert status == 200, body
    first = __import__("json").loads(body)
    assert first["version"] == 1 and first["annotated"] == 1 and first["memory_rows"] > 0
    assert np.array_equal(server.labels(f"/api/annotations/{name}"), mask)
    status, body, _ = server.call("PUT", f"/api/annotations/{name}", png_bytes(mask), {"If-Match": "0"})
    assert status == 409 and b"stale" in body
    status, body, _ = server.call("PUT", f"/api/annotations/{name}?version=1", png_bytes(mask))
    assert status == 200 and b'"version":2' in body
    rows = server.json("GET", "/api/status")[1]["memory_rows"]
    assert rows == first["memory_rows"]  # re-annotating replaces the image's rows, never duplicates them
    labels = server.labels(f"/api/predictions/{ids[1]}.jpg")
    assert labels.shape == voc_mask(voc, ids[1]).shape and set(np.unique(labels).tolist()) <= {0, 1, 2, 3}
    neighbours = server.json("GET", f"/api/neighbours/{ids[1]}.jpg?x=10&y=20&k=5")[1]
    assert len(neighbours["neighbours"]) == 5 and neighbours["neighbours"][0]["image"] == name
    assert all(n["label_name"] in CLASSES for n in neighbours["neighbours"])
    status, body, headers = server.call("GET", f"/api/confidence/{ids[1]}.jpg")
    assert status == 200 and 0 < float(headers["x-confidence"]) <= 1


def test_concurrent_writes_one_wins_the_others_get_409(served):
    server, ids, voc, *_ = served
    name = f"{ids[2]}.jpg"
    data = png_bytes(voc_mask(voc, ids[2]))
    barrier = threading.Barrier(6)

    def write(_):
        barrier.wait()
        return server.call("PUT", f"/api/annotations/{name}", data, {"If-Match": "0"})[0]

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(write, range(6)))
    assert statuses == [200] + [409] * 5


def test_bad_bodies_are_refused_with_clear_messages(served):
    server, ids, voc, *_ = served
    name = f"{ids[3]}.jpg"
    height, width = voc_mask(voc, ids[3]).shape
    cases = {
        png_bytes(np.zeros((10, 12), np.uint8)): f"is 12x10, the image is {width}x{height}",
        png_bytes(np.full((height, width), 7, np.uint8)): "values [7] are beyond the 4 classes",
        png_bytes(np.zeros((height, width), np.uint8), "RGB"): "RGB PNG; send a single-channel index PNG",
        b"\x89PNG\r\n\x1a\n garbage": "not a readable PNG",
        b"": "not a readable PNG",
    }
    out = io.BytesIO()
    Image.new("L", (width, height)).save(out, format="JPEG")
    cases[out.getvalue()] = "is a JPEG image"
    for body, message in cases.items():
        status, answer = server.call("PUT", f"/api/annotations/{name}", body)[:2]
        assert status == 400 and message in answer.decode(), (message, answer)
    assert server.json("GET", "/api/images")[1][3]["status"] != "annotated"
    # a body beyond the bound is refused before it is read
    connection = http.client.HTTPConnection(server.base.split("//")[1], timeout=30)
    connection.putrequest("PUT", f"/api/annotations/{name}")
    connection.putheader("Authorization", f"Bearer {server.token}")
    connection.putheader("Content-Length", str(1 << 30))
    connection.endheaders()
    connection.send(b"x" * 1024)
    response = connection.getresponse()
    assert response.status == 413 and b"at most" in response.read()
    connection.close()
    # malformed JSON, bad parameters, unknown images, no token
    assert server.call("POST", "/api/export", b"{not json")[0] == 400
    assert server.json("POST", "/api/export", {"dir": "relative/folder"})[0] == 400
    assert server.json("POST", "/api/export", ["a list"])[0] == 400
    assert server.call("GET", f"/api/neighbours/{name}?x=abc&y=1")[0] == 400
    assert server.call("GET", f"/api/neighbours/{name}?x=100000&y=1")[0] == 400
    assert server.call("GET", "/api/predictions/nope.jpg")[0] == 404
    assert server.call("PUT", f"/api/annotations/{name}", png_bytes(np.zeros((height, width))), token=False)[0] == 401


def test_classes_are_renamed_and_added_never_removed(served):
    server, *_ = served
    status, classes = server.json("GET", "/api/classes")
    assert status == 200 and [c["name"] for c in classes] == CLASSES
    names = ["background", "plane", "person", "chair", "dog"]
    status, classes = server.json("PUT", "/api/classes", {"names": names})
    assert status == 200 and [c["name"] for c in classes] == names and classes[4]["colour"].startswith("#")
    status, body = server.json("PUT", "/api/classes", {"names": names[:3]})
    assert status == 400 and "not removed" in body["error"]
    assert server.json("PUT", "/api/classes", {"names": ["a", "a", "b", "c", "d"]})[0] == 400


def test_export_through_the_api_and_again_after_an_image_is_erased(served, tmp_path):
    server, ids, voc, *_ = served
    status, first = server.json("POST", "/api/export", {"dir": str(tmp_path / "out")})
    assert status == 200 and first["annotated"] == [ids[0], ids[2]], first
    assert (tmp_path / "out" / "SegmentationClass" / f"{ids[2]}.png").is_file()
    assert sorted(p.stem for p in (tmp_path / "out" / "predictions").glob("*.png")) == [ids[1], ids[3]]
    blank = np.full(voc_mask(voc, ids[2]).shape, 255, np.uint8)
    assert server.call("PUT", f"/api/annotations/{ids[2]}.jpg?version=1", png_bytes(blank))[0] == 200
    status, second = server.json("POST", "/api/export", {"dir": str(tmp_path / "out")})
    assert status == 200 and second["annotated"] == [ids[0]]
    assert not (tmp_path / "out" / "SegmentationClass" / f"{ids[2]}.png").exists()
    assert not (tmp_path / "out" / "JPEGImages" / f"{ids[2]}.jpg").exists()
    assert (tmp_path / "out" / "predictions" / f"{ids[2]}.png").is_file()
    assert (tmp_path / "out" / "ImageSets" / "Segmentation" / "train.txt").read_text().split() == [ids[0]]
    assert server.json("GET", "/api/images")[1][2]["status"] == "predicted"


def test_kill_9_during_saves_leaves_a_state_the_app_resumes(served, tmp_path):
    _, ids, voc, folder, weights = served
    state = tmp_path / "state"
    masks = [voc_mask(voc, ids[0]), np.where(voc_mask(voc, ids[0]) == 255, 255, 0).astype(np.uint8)]
    bodies = [png_bytes(m) for m in masks]
    for delay in (0.6, 1.3):
        server = LabelServer(folder / "photos", folder / "classes.txt", weights, "--state", str(state))
        answered = []
        stop = threading.Event()

        def hammer(server=server, answered=answered, stop=stop):
            i = 0
            while not stop.is_set():
                try:
                    status = server.call("PUT", f"/api/annotations/{ids[0]}.jpg", bodies[i % 2])[0]
                    answered.append((status, i % 2))
                except (OSError, http.client.HTTPException):  # the server died mid-answer
                    return
                i += 1

        thread = threading.Thread(target=hammer)
        thread.start()
        time.sleep(delay)
        server.stop(kill=True)  # SIGKILL: no clean-up runs
        stop.set()
        thread.join(30)
        assert any(status == 200 for status, _ in answered)
        stored = np.array(Image.open(state / "annotations" / f"{ids[0]}.png"))
        assert any(np.array_equal(stored, m) for m in masks)  # one whole annotation, never a mix
    again = LabelServer(folder / "photos", folder / "classes.txt", weights, "--state", str(state))
    try:
        resumed = again.labels(f"/api/annotations/{ids[0]}.jpg")
        assert any(np.array_equal(resumed, m) for m in masks)
        assert not list((state / "annotations").glob(".*.tmp"))
        images = again.json("GET", "/api/images")[1]
        assert images[0]["status"] == "annotated" and images[0]["version"] >= 1
        assert again.labels(f"/api/predictions/{ids[1]}.jpg").ndim == 2
    finally:
        again.stop()


def test_binds_localhost_unless_asked_and_warns_when_asked(served, tmp_path):
    server, _, _, folder, weights = served
    assert server.url.startswith("http://127.0.0.1:") and "?token=" in server.url
    exposed = LabelServer(folder / "photos", folder / "classes.txt", weights, "--host", "0.0.0.0",
                          "--state", str(tmp_path / "state"))
    try:
        assert exposed.json("GET", "/api/status")[0] == 200
        exposed.process.terminate()
        exposed.process.wait(30)
        assert "warning: listening on 0.0.0.0" in exposed.process.stderr.read()
    finally:
        exposed.stop()


def test_bad_command_lines_are_one_line_before_any_model_loads(tmp_path):
    import subprocess
    import sys

    from label_server import ROOT

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "photos" / "a.jpg")
    (tmp_path / "empty").mkdir()
    cases = {("/nonexistent/photos",): "/nonexistent/photos: PHOTOS_DIR folder not found",
             (str(tmp_path / "photos"), "--classes", "nope.txt"): "nope.txt: --classes file not found",
             (str(tmp_path / "photos"), "--annotations", "nope.json"): "nope.json: --annotations file not found",
             (str(tmp_path / "photos"),): "no classes: give --classes FILE",
             (str(tmp_path / "empty"),): "no images"}
    for argv, message in cases.items():
        done = subprocess.run([sys.executable, "-m", "hummingbird", "label", *argv, "--weights", "random"],
                              check=False, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                              timeout=120)
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, \
            (argv, done.stderr)
