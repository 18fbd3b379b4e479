"""Malformed input: every problem ends in one clear line naming the file and the problem (exit 2),
never in a traceback; bank files are checked; interrupted builds leave no partial bank. (The command-line
rows — missing folders, unpaired or malformed masks, split lists, file sets, weights of another
architecture, banks of other classes — are in the bad-input matrix, test_bad_input_matrix.py.)"""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
from conftest import write_folder_dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from hummingbird.cli.main import main
from hummingbird.datasets.registry import load_dataset
from hummingbird.errors import BankError, DatasetError
from hummingbird.evaluation.metrics import ConfusionMatrix, scores
from hummingbird.memory.bank import MemoryBank
from hummingbird.memory.patch_labels import patch_label_distributions

COMMON = ["--weights", "random", "--input-size", "64", "--num-workers", "0", "--no-progress"]


def build(root, out, *extra, capsys=None, split="all", backbone="dino_vits16"):
    code = main(["build-memory", "--dataset", "folder", "--data-root", str(root), "--split", split,
                 "--backbone", backbone, "--no-augment", "--out", str(out), *COMMON, *extra])
    err = capsys.readouterr().err if capsys else ""
    assert "Traceback" not in err
    return code, err


@pytest.fixture
def ds(tmp_path):
    return write_folder_dataset(tmp_path / "ds", n_train=3, n_val=1)


def test_truncated_image_reported_through_loader_workers(ds, tmp_path, capsys):
    path = ds / "images" / "img002.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code = main(["build-memory", "--dataset", "folder", "--data-root", str(ds), "--split", "all",
                 "--backbone", "dino_vits16", "--no-augment", "--out", str(tmp_path / "b.safetensors"),
                 "--weights", "random", "--input-size", "64", "--num-workers", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "img002.png: cannot read image, unreadable or truncated" in err
    assert "Traceback" not in err and err.count("\n") == 2  # the memory line and the error line


def test_grayscale_and_rgba_images_are_converted_with_one_warning(ds):
    rgb = np.array(Image.open(ds / "images" / "img000.png"))
    Image.fromarray(rgb[..., 0]).save(ds / "images" / "img000.png")  # grayscale
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(ds / "images" / "img001.png")
    dataset = load_dataset("folder", ds, "all")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = [dataset[i] for i in range(len(dataset))]
    assert [s["image"].shape for s in samples] == [(3, 64, 64)] * 4
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "img000.png: L image converted to RGB" in messages[0]


def test_input_size_not_multiple_of_patch(ds, tmp_path, capsys):
    code = main(["build-memory", "--dataset", "folder", "--data-root", str(ds), "--backbone", "dinov2_vits14",
                 "--weights", "random", "--input-size", "512", "--out", str(tmp_path / "b.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and "input size 512x512 is not a multiple of dinov2_vits14's patch size 14" in err
    assert "--input-size 518" in err


@pytest.fixture
def bank_path(ds, tmp_path):
    path = tmp_path / "bank.safetensors"
    assert build(ds, path)[0] == 0
    return path


def _evaluate(ds, bank, *extra, capsys):
    code = main(["evaluate", "--dataset", "folder", "--data-root", str(ds), "--split", "val", "--bank", str(bank),
                 "--out", str(bank.parent / "r.json"), "--weights", "random", "--num-workers", "0", "--no-progress",
                 *extra])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize("extra,field", [
    (["--backbone", "dinov2_vits14", "--input-size", "56"], "backbone: bank has 'dino_vits16', pipeline has 'dinov2_vits14'"),
    (["--input-size", "96"], "input_size: bank has 64, pipeline has 96"),
    (["--layer", "3"], "layer: bank has 11, pipeline has 3"),
])
def test_bank_from_another_pipeline(ds, bank_path, capsys, extra, field):
    code, err = _evaluate(ds, bank_path, *extra, capsys=capsys)
    assert code == 2 and f"{bank_path}: built for another pipeline" in err and field in err


def test_bank_of_another_feature_kind(bank_path):
    bank = MemoryBank.load(bank_path)
    with pytest.raises(BankError, match="feature_kind: bank has 'tokens', pipeline has 'fungi'"):
        bank.check_compatible({"feature_kind": "fungi", "feature_dim": 384}, source=str(bank_path))


def test_corrupted_bank_fails_its_checksum(bank_path, capsys, ds):
    data = bytearray(bank_path.read_bytes())
    data[-100] ^= 0xFF  # flip bits inside the tensor data
    bank_path.write_bytes(bytes(data))
    with pytest.raises(BankError, match="bank.safetensors: bank checksum mismatch .* the file is corrupted"):
        MemoryBank.load(bank_path)
    code, err = _evaluate(ds, bank_path, capsys=capsys)
    assert code == 2 and "checksum mismatch" in err


def test_truncated_bank(bank_path):
    data = bank_path.read_bytes()
    bank_path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(BankError, match="bank.safetensors: not a readable memory bank"):
        MemoryBank.load(bank_path)


def test_bank_from_a_newer_format_is_refused(bank_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(bank_path), framework="pt") as f:
        meta = json.loads(f.metadata()["hummingbird"])
    meta["format_version"] = 99
    save_file(load_file(str(bank_path)), str(bank_path), metadata={"hummingbird": json.dumps(meta)})
    with pytest.raises(BankError, match="bank format 99 is newer than this toolkit reads"):
        MemoryBank.load(bank_path)


def test_check_dataset_reports_every_problem_in_one_pass(ds, tmp_path, capsys):
    (ds / "masks" / "img000.png").unlink()
    Image.fromarray(np.zeros((32, 48), np.uint8)).save(ds / "masks" / "img001.png")
    Image.fromarray(np.full((64, 64), 9, np.uint8)).save(ds / "masks" / "img002.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(ds / "masks" / "orphan.png")
    report_path = tmp_path / "report.json"
    code = main(["check-dataset", str(ds), "--out", str(report_path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    report = json.loads(report_path.read_text())
    problems = "\n".join(report["problems"])
    assert len(report["problems"]) == 4 and not report["ok"]
    assert "img000.png" in problems and "mask is 48x32" in problems and "mask values [9]" in problems
    assert "orphan.png" in problems
    assert sum(report["class_pixels"].values()) == 64 * 64 - np.sum(np.array(Image.open(ds / "masks" / "img003.png")) == 255)
    assert "class pixel frequencies" in out


def test_check_dataset_clean(ds, capsys):
    assert main(["check-dataset", str(ds), "--no-progress"]) == 0
    assert "0 problems" in capsys.readouterr().out


def test_same_seed_same_bank_and_miou(ds, tmp_path):
    paths = []
    for run in range(2):
        path = tmp_path / f"bank{run}.safetensors"
        assert main(["build-memory", "--dataset", "folder", "--data-root", str(ds), "--split", "train",
                     "--backbone", "dino_vits16", "--memory-size", "24", "--augmentation-epochs", "2",
                     "--seed", "5", "--out", str(path), *COMMON[:-3], "--num-workers", "2", "--no-progress"]) == 0
        assert main(["evaluate", "--dataset", "folder", "--data-root", str(ds), "--bank", str(path),
                     "--k", "3", "--out", str(tmp_path / f"r{run}.json"), "--weights", "random",
                     "--num-workers", "0", "--no-progress"]) == 0
        paths.append(path)
    a, b = MemoryBank.load(paths[0]), MemoryBank.load(paths[1])
    assert torch.equal(a.features, b.features) and torch.equal(a.labels, b.labels)
    assert a.metadata["checksum"] == b.metadata["checksum"]
    r0, r1 = (json.loads((tmp_path / f"r{i}.json").read_text()) for i in range(2))
    assert r0["mIoU"] == r1["mIoU"] and r0["confusion_matrix"] == r1["confusion_matrix"]


# ----------------------------------------------------------------------------- properties

@settings(max_examples=60, deadline=None)
@given(data=st.data(), patch=st.sampled_from([1, 2, 4]), cells=st.integers(1, 4), classes=st.integers(1, 6))
def test_patch_distributions_never_nan_and_sum_to_one(data, patch, cells, classes):
    side = patch * cells
    values = st.one_of(st.integers(0, classes - 1), st.just(255))
    mask = torch.tensor(data.draw(st.lists(values, min_size=side * side, max_size=side * side))).view(1, side, side)
    dists = patch_label_distributions(mask, patch, classes)
    assert not torch.isnan(dists).any() and (dists >= 0).all()
    labelled = (mask != 255).view(1, cells, patch, cells, patch).any(4).any(2)
    sums = dists.sum(-1)
    torch.testing.assert_close(sums[labelled], torch.ones(int(labelled.sum())))
    assert (sums[~labelled] == 0).all()


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(1, 50), classes=st.integers(1, 6))
def test_metrics_never_nan_with_ignored_pixels(data, n, classes):
    target = torch.tensor(data.draw(st.lists(st.one_of(st.integers(0, classes - 1), st.just(255)), min_size=n, max_size=n)))
    pred = torch.tensor(data.draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)))
    cm = ConfusionMatrix(classes)
    cm.update(pred, target)
    result = scores(cm.matrix)
    assert cm.matrix.sum() == int((target != 255).sum())
    if (target != 255).any():
        assert 0 <= result["mIoU"] <= 1 and 0 <= result["pixel_accuracy"] <= 1
    assert all(v is None or 0 <= v <= 1 for v in result["per_class_iou"].values())


# ----------------------------------------------------------------------------- interruption

def test_sigterm_during_build_leaves_previous_bank_intact(tmp_path):
    ds = write_folder_dataset(tmp_path / "big", n_train=60, n_val=0, size=128)
    out = tmp_path / "bank.safetensors"
    assert build(ds, out)[0] == 0
    previous = out.read_bytes()
    cmd = [sys.executable, "-m", "hummingbird", "build-memory", "--dataset", "folder", "--data-root", str(ds),
           "--split", "all", "--backbone", "dino_vits16", "--weights", "random", "--input-size", "128",
           "--batch-size", "2", "--num-workers", "0", "--out", str(out)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.time() + 120
    seen = ""
    while "memory epoch" not in seen and time.time() < deadline:  # wait until the build is under way
        seen += proc.stderr.read(1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=120)
    assert proc.returncode == 143, seen + rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert out.read_bytes() == previous  # the complete previous bank, untouched
    MemoryBank.load(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank.safetensors", "big"]  # no temporary files


def test_sigterm_inside_a_guarded_library_call_still_interrupts(tmp_path, monkeypatch, capsys):
    """SIGTERM raises cli.Terminated wherever the process is; an ``except Exception`` around a checkpoint
    read must not turn it into a "not a valid checkpoint" error."""
    import hummingbird.models.checkpoints as checkpoints
    from hummingbird.cli.main import _raise_terminated

    weights = tmp_path / "w.pth"
    torch.save({"w": torch.zeros(2)}, weights)
    ds = write_folder_dataset(tmp_path / "ds", n_train=2, n_val=0, size=64)
    monkeypatch.setattr(checkpoints.torch, "load", lambda *a, **kw: _raise_terminated(signal.SIGTERM, None))
    code = main(["build-memory", "--dataset", "folder", "--data-root", str(ds), "--split", "all", "--backbone",
                 "dino_vits16", "--weights", str(weights), "--input-size", "64", "--num-workers", "0",
                 "--out", str(tmp_path / "bank.safetensors")])
    err = capsys.readouterr().err
    assert code == 143 and "interrupted" in err and "valid" not in err
    assert not (tmp_path / "bank.safetensors").exists()


def test_interrupted_write_never_leaves_a_loadable_partial_file(tmp_path, monkeypatch):
    import hummingbird.files.tensorfile as tensorfile

    bank = MemoryBank(torch.zeros(4, 2), torch.ones(4, 1), torch.zeros(4, 3, dtype=torch.int32),
                      torch.zeros(1, 6, dtype=torch.int32), {"x": 1})

    def dying_save(tensors, filename, metadata):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(tensorfile, "save_file", dying_save)
    with pytest.raises(KeyboardInterrupt):
        bank.save(tmp_path / "b.safetensors")
    assert list(tmp_path.iterdir()) == []


def _truncate(path):
    path.write_bytes(path.read_bytes()[:200])


DATASET_PROBLEMS = {
    "image without mask": (lambda ds: (ds / "masks" / "img001.png").unlink(), "img001.png"),
    "mask without image": (lambda ds: (ds / "images" / "img001.png").unlink(), "img001.png"),
    "unreadable image": (lambda ds: (ds / "images" / "img002.png").write_bytes(b"nope"), "img002.png: cannot read"),
    "truncated image": (lambda ds: _truncate(ds / "images" / "img002.png"), "img002.png: cannot read"),
    "mask size": (lambda ds: Image.fromarray(np.zeros((8, 8), np.uint8)).save(ds / "masks" / "img000.png"),
                  "img000.png: mask is 8x8"),
    "mask values": (lambda ds: Image.fromarray(np.full((64, 64), 4, np.uint8)).save(ds / "masks" / "img000.png"),
                    "img000.png: mask values [4]"),
    "colour mask": (lambda ds: Image.fromarray(np.zeros((64, 64, 4), np.uint8)).save(ds / "masks" / "img000.png"),
                    "img000.png: mask is a 4-channel colour image"),
    "split ids": (lambda ds: (ds / "splits" / "train.txt").write_text("img000\nghost\n"), "train.txt"),
}


@pytest.mark.parametrize("problem", sorted(DATASET_PROBLEMS))
def test_dataset_problems_raise_dataset_error_naming_the_file(ds, problem):
    mutate, expected = DATASET_PROBLEMS[problem]
    mutate(ds)
    with pytest.raises(DatasetError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        dataset = load_dataset("folder", ds, "train" if problem == "split ids" else "all")
        for i in range(len(dataset)):
            dataset[i]
