"""The video task on the command line: ``propagate`` end to end on real DAVIS frames (palette PNGs named by
frame, summary.json, frame 0 = the first mask), ``evaluate --task video --predictions`` on the published OSVOS
predictions reproducing the official toolkit's numbers (results JSON of exactly the documented keys, J&F bars),
``evaluate --task video`` propagating (its saved predictions score the same numbers again), and bad input
refused in one line naming the file or option, exit 2, before any backbone loads."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from realdata import SHARED, real_davis

from hummingbird.cli.main import main

RANDOM = ["--backbone", "dinov2_vits14", "--weights", "random", "--device", "cpu", "--no-progress"]
KEYS = {"J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay", "JF_mean"}


def _fails(argv, capsys, *words) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture(scope="module")
def few_frames(tmp_path_factory):
    """The first 3 frames of DAVIS blackswan and its first annotation (a DAVIS-2016 0/255 mask)."""
    davis = real_davis()
    root = tmp_path_factory.mktemp("blackswan")
    (root / "frames").mkdir()
    for i in range(3):
        shutil.copy(davis / "JPEGImages" / "480p" / "blackswan" / f"{i:05d}.jpg", root / "frames")
    shutil.copy(davis / "Annotations" / "480p" / "blackswan" / "00000.png", root / "first.png")
    return root


def test_propagate_writes_palette_pngs_and_a_summary(few_frames, tmp_path, capsys):
    out = tmp_path / "masks"
    assert main(["propagate", "--frames", str(few_frames / "frames"), "--first-mask", str(few_frames / "first.png"),
                 "--out", str(out), *RANDOM]) == 0
    assert "wrote 3 masks" in capsys.readouterr().out
    first = (np.array(Image.open(few_frames / "first.png")) == 255).astype(np.uint8)
    for i in range(3):
        image = Image.open(out / f"{i:05d}.png")
        assert image.mode == "P" and image.size == (854, 480)
        assert set(np.unique(np.array(image))) <= {0, 1}
    np.testing.assert_array_equal(np.array(Image.open(out / "00000.png")), first)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_frames"] == 3 and summary["settings"]["protocol_preset"] == "dino"
    assert summary["settings"]["protocol"]["topk"] == 5 and summary["settings"]["precision"] == "fp32"
    assert set(summary["object_pixels"]) == {"00000", "00001", "00002"}


def test_evaluate_predictions_reproduces_the_official_numbers(tmp_path, capsys):
    davis = real_davis()
    official_file = SHARED / "davis" / "reference" / "osvos_official_eval.json"
    if not official_file.is_file():
        pytest.skip("no official OSVOS evaluation: add ../shared/davis/reference/")
    official = json.loads(official_file.read_text())["per_object"]
    out = tmp_path / "osvos.json"
    assert main(["evaluate", "--task", "video", "--dataset", "davis", "--data-root", str(davis), "--predictions",
                 str(official_file.parent / "osvos"), "--out", str(out), "--plot"]) == 0
    printed = capsys.readouterr().out
    assert "global" in printed and "JF_mean" in printed
    result = json.loads(out.read_text())
    assert set(result) == {"per_sequence", "global", "settings"} and set(result["global"]) == KEYS
    for name, expected in official.items():
        got = result["per_sequence"][name.rsplit("_", 1)[0]]
        assert set(got) == KEYS
        assert all(abs(got[k] - v) < 1e-4 for k, v in expected.items()), name
    assert (tmp_path / "osvos_per_sequence.png").is_file() and (tmp_path / "osvos_per_sequence.svg").is_file()
    subset = tmp_path / "dog.json"
    assert main(["evaluate", "--task", "video", "--dataset", "davis", "--data-root", str(davis), "--sequences", "dog",
                 "--predictions", str(official_file.parent / "osvos"), "--out", str(subset)]) == 0
    assert list(json.loads(subset.read_text())["per_sequence"]) == ["dog"]


def test_evaluate_propagating_scores_its_saved_predictions_again(tmp_path, capsys):
    davis = real_davis()
    first, again = tmp_path / "run.json", tmp_path / "again.json"
    assert main(["evaluate", "--task", "video", "--dataset", "davis", "--data-root", str(davis), "--sequences",
                 "blackswan", "--max-frames", "4", "--save-predictions", str(tmp_path / "pred"), "--out", str(first),
                 *RANDOM]) == 0
    result = json.loads(first.read_text())
    assert result["settings"]["max_frames"] == 4 and result["settings"]["protocol_preset"] == "dino"
    assert sorted(p.name for p in (tmp_path / "pred" / "blackswan").iterdir()) == [f"{i:05d}.png" for i in range(4)]
    trimmed = tmp_path / "davis4"  # the same sequence, 4 annotated frames
    for kind in ("JPEGImages", "Annotations"):
        (trimmed / kind / "480p" / "blackswan").mkdir(parents=True)
        for i in range(4):
            name = f"{i:05d}.{'jpg' if kind == 'JPEGImages' else 'png'}"
            shutil.copy(davis / kind / "480p" / "blackswan" / name, trimmed / kind / "480p" / "blackswan")
    assert main(["evaluate", "--task", "video", "--dataset", "davis", "--data-root", str(trimmed), "--predictions",
                 str(tmp_path / "pred"), "--out", str(again)]) == 0
    assert json.loads(again.read_text())["global"] == result["global"]


# ----------------------------------------------------------------------------- bad input

@pytest.fixture()
def video(tmp_path):
    """Three 40x30 frames and a matching first mask."""
    (tmp_path / "frames").mkdir()
    for i in range(3):
        Image.fromarray(np.full((30, 40, 3), 60 * i, np.uint8)).save(tmp_path / "frames" / f"{i:03d}.png")
    mask = np.zeros((30, 40), np.uint8)
    mask[5:20, 5:20] = 1
    Image.fromarray(mask, mode="L").save(tmp_path / "mask.png")
    return tmp_path


def _propagate(video, frames=None, mask=None):
    return ["propagate", "--frames", str(frames or video / "frames"), "--first-mask", str(mask or video / "mask.png"),
            "--out", str(video / "out"), *RANDOM]


def test_frames_of_mixed_sizes(video, capsys):
    Image.fromarray(np.zeros((31, 40, 3), np.uint8)).save(video / "frames" / "003.png")
    _fails(_propagate(video), capsys, "003.png", "mixed sizes", "40x31")


def test_first_mask_of_another_size(video, capsys):
    Image.fromarray(np.ones((30, 41), np.uint8)).save(video / "small.png")
    _fails(_propagate(video, mask=video / "small.png"), capsys, "small.png", "41x30", "40x30")


def test_empty_folder(video, capsys):
    (video / "empty").mkdir()
    (video / "empty" / "notes.txt").write_text("no frames")
    _fails(_propagate(video, frames=video / "empty"), capsys, "empty", "empty folder")


def test_missing_folder_and_mask(video, capsys):
    _fails(_propagate(video, frames=video / "nowhere"), capsys, "nowhere", "no such folder")
    _fails(_propagate(video, mask=video / "nomask.png"), capsys, "nomask.png", "not found")


def test_unreadable_frame_and_mask(video, capsys):
    (video / "frames" / "004.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    _fails(_propagate(video), capsys, "004.png", "cannot read")
    (video / "frames" / "004.png").unlink()
    (video / "bad.png").write_bytes(b"not a png")
    _fails(_propagate(video, mask=video / "bad.png"), capsys, "bad.png", "cannot read mask")


def test_masks_that_are_not_8_bit_object_ids(video, capsys):
    Image.fromarray(np.ones((30, 40), np.uint16) * 300).save(video / "wide.png")
    _fails(_propagate(video, mask=video / "wide.png"), capsys, "wide.png", "16/32-bit")
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(video / "colour.png")
    _fails(_propagate(video, mask=video / "colour.png"), capsys, "colour.png", "colour picture")
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(video / "blank.png")
    _fails(_propagate(video, mask=video / "blank.png"), capsys, "blank.png", "no object")


def test_options_of_another_task_are_refused(video, capsys):
    base = ["evaluate", "--out", str(video / "r.json")]
    _fails([*base, "--task", "video", "--dataset", "voc", "--data-root", str(video)], capsys, "--dataset voc")
    _fails([*base, "--dataset", "davis", "--data-root", str(video)], capsys, "--task video")
    _fails([*base, "--task", "video", "--dataset", "davis", "--data-root", str(video), "--bank", "b.safetensors"],
           capsys, "--bank")
    _fails([*base, "--task", "video", "--dataset", "davis", "--data-root", str(video), "--eigen-crop", "none"],
           capsys, "--eigen-crop")
    _fails([*base, "--dataset", "voc", "--data-root", str(video), "--sequences", "dog"], capsys, "--sequences",
           "--task video")
    _fails(["build-memory", "--task", "video", "--dataset", "davis", "--data-root", str(video), "--out", "x"], capsys,
           "propagate")
    _fails([*base, "--task", "video", "--dataset", "davis"], capsys, "--data-root")


def test_davis_root_problems(video, capsys):
    base = ["evaluate", "--task", "video", "--dataset", "davis", "--out", str(video / "r.json"), "--predictions",
            str(video)]
    _fails([*base, "--data-root", str(video)], capsys, "JPEGImages")
    davis = real_davis()
    _fails([*base, "--data-root", str(davis), "--sequences", "nosuch"], capsys, "nosuch", "not a sequence")
    _fails([*base, "--data-root", str(davis), "--sequences", "dog"], capsys, "dog", "no such predictions folder")
    (video / "dog").mkdir()
    _fails([*base, "--data-root", str(davis), "--sequences", "dog"], capsys, "00000.png", "prediction not found")
