"""No silently wrong result (issue 18): photos read upright (EXIF orientation), non-finite weights and
banks refused, write errors (disk full, file size limit, read-only folder) and odd text files named in
one line, warnings shown once in the user's words."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import leftovers, rotated_jpeg, unwritable
from PIL import Image

from hummingbird.cli.main import main
from hummingbird.datasets.synthetic import block_scene, write_block_dataset

TINY = ["--backbone", "timm:vit_tiny_patch16_224", "--weights", "random", "--input-size", "64", "--num-workers", "0",
        "--no-progress"]


def run(argv, capsys):
    """``main(argv)`` → (exit code, stdout, stderr), asserting no traceback."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def one_line(err: str) -> str:
    """The one error line (progress notes such as ``memory: N images ...`` aside)."""
    lines = [line for line in err.splitlines() if line.startswith("hummingbird")]
    assert len(lines) == 1, err
    return lines[0]


# ----------------------------------------------------------------------------- 1: EXIF orientation

def rotated_dataset(root: Path, width: int, height: int, orientation: int = 6) -> Path:
    """A folder dataset whose first image is a rotated JPEG (upright mask) of ``width x height``."""
    ds = write_block_dataset(root, n_train=3, n_val=1)
    rng = np.random.default_rng(7)
    image, mask = block_scene(rng, max(width, height), 16, 4)
    image, mask = image[:height, :width], mask[:height, :width]
    (ds / "images" / "img000.png").unlink()
    rotated_jpeg(image, ds / "images" / "img000.jpg", orientation)
    Image.fromarray(mask).save(ds / "masks" / "img000.png")
    np.save(root / "upright.npy", image)
    return ds


@pytest.mark.parametrize("width,height,orientation", [(96, 64, 6), (96, 64, 8), (64, 64, 6), (64, 64, 8)])
def test_rotated_photo_is_read_upright_with_its_upright_mask(tmp_path, width, height, orientation):
    from hummingbird.datasets.registry import load_dataset

    ds = rotated_dataset(tmp_path / "ds", width, height, orientation)
    stored = Image.open(ds / "images" / "img000.jpg")
    assert stored.size == (height, width)  # the pixels as stored are turned
    image, mask = load_dataset("folder", ds, "all").load_sample(0)
    assert image.size == (width, height) and mask.shape == (height, width)
    upright = np.load(tmp_path / "ds" / "upright.npy").astype(int)
    assert np.abs(np.asarray(image).astype(int) - upright).mean() < 15  # JPEG noise only (turned: ~58)


def test_check_dataset_names_rotated_images_and_finds_no_problem(tmp_path, capsys):
    ds = rotated_dataset(tmp_path / "ds", 96, 64)
    report = tmp_path / "report.json"
    code, out, _ = run(["check-dataset", ds, "--out", report, "--no-progress"], capsys)
    assert code == 0, out
    data = json.loads(report.read_text())
    assert data["problems"] == [] and data["rotated_images"] == [f"{ds / 'images' / 'img000.jpg'} (EXIF orientation 6)"]
    assert "1 images carry an EXIF rotation and are read upright" in out


def test_segment_and_source_crops_are_upright(tmp_path, capsys):
    from hummingbird.memory.bank import MemoryBank
    from hummingbird.visual.neighbours import SourceImages

    ds = rotated_dataset(tmp_path / "ds", 96, 64)
    bank = tmp_path / "bank.safetensors"
    assert run(["build-memory", "--dataset", "folder", "--data-root", ds, "--split", "all", "--no-augment",
                "--out", bank, *TINY], capsys)[0] == 0
    assert SourceImages(MemoryBank.load(bank)).open(0).size == (96, 64)
    photo, twin = tmp_path / "photo", tmp_path / "twin"
    photo.mkdir(), twin.mkdir()
    shutil.copy(ds / "images" / "img000.jpg", photo / "p.jpg")
    Image.open(ds / "images" / "img000.jpg").transpose(Image.Transpose.ROTATE_270).save(twin / "p.png")
    for folder in (photo, twin):
        assert run(["segment", "--bank", bank, "--images", folder, "--out-dir", folder / "seg", *TINY[2:]],
                   capsys)[0] == 0
    labels = np.array(Image.open(photo / "seg" / "p.png"))
    assert labels.shape == (64, 96)  # the photo as displayed, not as stored
    assert (labels == np.array(Image.open(twin / "seg" / "p.png"))).mean() > 0.9


# ----------------------------------------------------------------------------- 2: non-finite numbers

def tiny_state(**poison):
    from hummingbird.models.backbones import load_backbone

    state = load_backbone("timm:vit_tiny_patch16_224", weights="random").model.state_dict()
    for name, value in poison.items():
        state[name.replace("__", ".")].view(-1)[3] = value
    return state


@pytest.mark.parametrize("value,word", [(float("nan"), "NaN"), (float("inf"), "infinite")])
def test_weights_with_non_finite_values_are_refused_naming_the_tensor(tmp_path, capsys, value, word):
    ds = write_block_dataset(tmp_path / "ds", n_train=2, n_val=1)
    weights = tmp_path / "w.pth"
    torch.save(tiny_state(blocks__3__attn__qkv__weight=value), weights)
    out = tmp_path / "bank.safetensors"
    out.write_bytes(b"an earlier bank")
    code, _, err = run(["build-memory", "--dataset", "folder", "--data-root", ds, "--no-augment", "--out", out,
                        "--backbone", "timm:vit_tiny_patch16_224", "--weights", weights, "--input-size", "64",
                        "--num-workers", "0", "--no-progress"], capsys)
    line = one_line(err)
    assert code == 2 and f"{weights}: tensor blocks.3.attn.qkv.weight holds non-finite values: 1 {word} of" in line, line
    assert out.read_bytes() == b"an earlier bank" and leftovers(tmp_path) == []


def nan_bank(path: Path, rows=(1, 4)) -> None:
    """A bank file whose feature rows ``rows`` are NaN, written past the save check (valid checksum)."""
    from hummingbird.files.tensorfile import write_tensor_file
    from hummingbird.memory.bank import FORMAT_VERSION, tensors_checksum

    features = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    features[list(rows)] = float("nan")
    tensors = {"features": features, "labels": torch.eye(2)[torch.tensor([0, 1, 0, 1, 0, 1])],
               "sources": torch.zeros(6, 3, dtype=torch.int32), "views": torch.zeros(1, 6, dtype=torch.int32)}
    meta = {"format_version": FORMAT_VERSION, "num_patches": 6, "checksum": tensors_checksum(tensors)}
    write_tensor_file(path, tensors, "hummingbird", meta)


def test_bank_with_nan_features_is_refused_on_load_naming_rows(tmp_path):
    from hummingbird.errors import BankError
    from hummingbird.memory.bank import MemoryBank

    nan_bank(tmp_path / "b.safetensors")
    with pytest.raises(BankError, match=r"b.safetensors: 2 of 6 feature rows hold NaN or infinite values \(rows 1, 4\)"):
        MemoryBank.load(tmp_path / "b.safetensors")


def test_bank_with_nan_features_is_not_written(tmp_path):
    from hummingbird.errors import BankError
    from hummingbird.memory.bank import MemoryBank

    features = torch.ones(5, 4)
    features[2, 1] = float("inf")
    bank = MemoryBank(features, torch.ones(5, 1), torch.zeros(5, 3, dtype=torch.int32),
                      torch.zeros(1, 6, dtype=torch.int32))
    (tmp_path / "b.safetensors").write_bytes(b"an earlier bank")
    with pytest.raises(BankError, match=r"b.safetensors: 1 of 5 feature rows hold NaN or infinite values \(rows 2\)"):
        bank.save(tmp_path / "b.safetensors")
    assert (tmp_path / "b.safetensors").read_bytes() == b"an earlier bank" and leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- 3/4: OS errors while writing
# (simulated ENOSPC, in-process EFBIG and unwritable folders: rows of test_bad_input_matrix.py)

# The same through the real command in real conditions: a full 1 MiB tmpfs (ENOSPC), a read-only mount
# (EROFS) and `ulimit -f` (EFBIG), in a user+mount namespace (skipped where `unshare` cannot make one).
REAL_WRITE_ERRORS = r"""
import os, resource, signal, sys
from hummingbird.cli.main import main
ds, full, ro, limited = sys.argv[1:5]
tiny = ["--backbone", "timm:vit_tiny_patch16_224", "--weights", "random", "--input-size", "64", "--num-workers", "0",
        "--no-progress", "--no-augment"]
build = ["build-memory", "--dataset", "folder", "--data-root", ds, *tiny]
with open(os.path.join(full, "filler"), "wb") as f:  # leave 4 KiB free
    f.write(b"\0" * (1024 * 1024 - 8192))
codes = [main([*build, "--out", os.path.join(full, "bank.safetensors")]),
         main([*build, "--out", os.path.join(ro, "bank.safetensors")])]
resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.RLIM_INFINITY))
codes.append(main([*build, "--out", os.path.join(limited, "bank.safetensors")]))
print(codes)
"""


def test_real_disk_full_read_only_and_size_limit(tmp_path):
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare cannot create a user and mount namespace here (needed to mount a small tmpfs)")
    ds = write_block_dataset(tmp_path / "ds", n_train=2, n_val=1)
    full, ro, limited = tmp_path / "full", tmp_path / "ro", tmp_path / "limited"
    for folder in (full, ro, limited):
        folder.mkdir()
    (ro / "bank.safetensors").write_bytes(b"an earlier bank")
    (limited / "bank.safetensors").write_bytes(b"an earlier bank")
    script = (f"mount -t tmpfs -o size=1m none {full} && mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} "
              f"&& exec {sys.executable} -c \"$0\" {ds} {full} {ro} {limited}")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, REAL_WRITE_ERRORS],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[2, 2, 2]", proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("hummingbird")]
    assert "Traceback" not in proc.stderr and len(lines) == 3, proc.stderr
    assert f"{full / 'bank.safetensors'}: cannot write: No space left on device (ENOSPC)" in lines[0]
    assert f"{ro}" in lines[1] and "Read-only file system (EROFS)" in lines[1]
    assert f"{limited / 'bank.safetensors'}: cannot write: File too large (EFBIG)" in lines[2]
    assert (ro / "bank.safetensors").read_bytes() == b"an earlier bank"
    assert (limited / "bank.safetensors").read_bytes() == b"an earlier bank"
    assert leftovers(limited) == [] and leftovers(ro) == []


# ----------------------------------------------------------------------------- 5: text inputs

@pytest.mark.parametrize("encoding,raw", [
    ("utf-8 BOM, CRLF, trailing blanks", "\ufeffbg  \r\nred\t\r\n\r\ngreen \r\nblue\r\n".encode("utf-8")),
    ("utf-8", "bg\nred\ngreen\nblue".encode("utf-8")),
])
def test_classes_txt_and_split_lists_in_the_usual_encodings(tmp_path, encoding, raw):
    from hummingbird.datasets.registry import load_dataset

    ds = write_block_dataset(tmp_path / "ds", n_train=3, n_val=1)
    (ds / "classes.txt").write_bytes(raw)
    (ds / "splits" / "train.txt").write_bytes("\ufeffimg000 \r\nimg001\r\n\r\nimg002\t\r\n".encode("utf-8"))
    dataset = load_dataset("folder", ds, "train")
    assert dataset.class_names == ("bg", "red", "green", "blue")
    assert [s.id for s in dataset.samples] == ["img000", "img001", "img002"]


def test_voc_split_list_with_a_bom_finds_its_images(tmp_path):
    from conftest import write_voc

    from hummingbird.datasets.registry import load_dataset

    root = write_voc(tmp_path / "voc")
    split = root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "train.txt"
    split.write_bytes(b"\xef\xbb\xbf" + split.read_bytes().replace(b"\n", b"\r\n"))
    assert [s.id for s in load_dataset("voc", root, "train").samples] == ["2007_000032", "2007_000039"]


@pytest.mark.parametrize("raw,where", [
    ("bg\nrød\n".encode("latin-1"), "byte 4 (0xf8)"),
    ("bg\nred\n".encode("utf-16"), "byte 0 (0xff)"),
])
def test_classes_txt_in_another_encoding_is_named_with_the_byte_offset(tmp_path, capsys, raw, where):
    ds = write_block_dataset(tmp_path / "ds", n_train=2, n_val=1)
    (ds / "classes.txt").write_bytes(raw)
    out = tmp_path / "bank.safetensors"
    code, _, err = run(["build-memory", "--dataset", "folder", "--data-root", ds, "--no-augment", "--out", out,
                        *TINY], capsys)
    line = one_line(err)
    assert code == 2 and f"{ds / 'classes.txt'}: not UTF-8 text at {where}" in line, line
    assert "save it as UTF-8" in line and not out.exists()


# ----------------------------------------------------------------------------- warnings, --weights DIR

def test_conversion_warning_once_in_the_users_words_across_workers(tmp_path):
    ds = write_block_dataset(tmp_path / "ds", n_train=4, n_val=0)
    for i in range(4):
        path = ds / "images" / f"img00{i}.png"
        Image.open(path).convert("L").save(path)
    argv = ["build-memory", "--dataset", "folder", "--data-root", str(ds), "--no-augment", "--batch-size", "1",
            "--out", str(tmp_path / "b.safetensors"), *TINY[:-3], "--num-workers", "2", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))  # as a user runs it, not under
    proc = subprocess.run([sys.executable, "-m", "hummingbird", *argv], capture_output=True, text=True,  # pytest's
                          timeout=300, env=env)  # warning capture
    err = proc.stderr
    assert proc.returncode == 0, err
    warned = [line for line in err.splitlines() if "converted to RGB" in line]
    assert len(warned) == 1, err
    assert re.match(rf"hummingbird: warning: {re.escape(str(ds / 'images'))}/img00\d.png: L image converted", warned[0])
    assert "UserWarning" not in err and "warnings.warn" not in err


def test_weights_given_a_folder_says_so(tmp_path, capsys):
    ds = write_block_dataset(tmp_path / "ds", n_train=2, n_val=1)
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "dino_vits16.pth").write_bytes(b"x")
    code, _, err = run(["build-memory", "--dataset", "folder", "--data-root", ds, "--out", tmp_path / "b.safetensors",
                        "--backbone", "dino_vits16", "--weights", folder, "--no-progress"], capsys)
    line = one_line(err)
    assert code == 2 and f"{folder}: --weights is a folder, not a weights file" in line, line
    assert "dino_vits16.pth" in line
