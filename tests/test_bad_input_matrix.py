"""The bad-input matrix (issue 18): every command, and the Python API (:class:`hummingbird.Segmenter`),
given a bad input, a failing disk or a broken file, as a user would. Each row asserts the exit status, the one line that explains it (naming the file and
the problem, no traceback) and that nothing was lost: every file that existed before is byte for byte
the same, and no temporary or lock file is left anywhere.

API rows assert the error class instead of the exit status. Rows run in process on a tiny random-weight ViT at 64 px (about 0.1 s each). Write failures are real
where the kernel can give them to an unprivileged test: ``RLIMIT_FSIZE`` (EFBIG) and an unwritable
folder (``chmod 555``, or ``chattr +i`` for root); a full disk (ENOSPC) is simulated by writers that
write part of the file and then fail with ENOSPC as a full disk makes them (the real ENOSPC, EROFS and
``ulimit -f`` runs are in ``test_input_fidelity.py``).
"""

from __future__ import annotations

import errno
import json
import resource
import shutil
import signal
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from conftest import leftovers, rotated_jpeg, unwritable
from PIL import Image

from hummingbird.cli.main import main
from hummingbird.datasets.synthetic import block_scene, write_block_dataset

TINY = ["--backbone", "timm:vit_tiny_patch16_224", "--weights", "random", "--input-size", "64"]
QUIET = ["--num-workers", "0", "--no-progress"]
BUILD = ["build-memory", "--dataset", "folder", "--data-root", "ds", "--no-augment", *TINY, *QUIET,
         "--out", "out/bank.safetensors"]
EVAL = ["evaluate", "--dataset", "folder", "--data-root", "ds", "--bank", "bank.safetensors", *QUIET, "--out", "out/r.json"]
SEGMENT = ["segment", "--bank", "bank.safetensors", "--images", "ds/images/img003.png", *QUIET, "--out-dir", "out/seg"]
NEIGHBOURS = ["neighbours", "--bank", "bank.safetensors", "--image", "ds/images/img003.png", "--patch", "1,1", *QUIET,
              "--data-root", "ds", "--out", "out/n.png"]
VIEWER = ["viewer", "--bank", "bank.safetensors", "--images", "ds/images/img003.png", *QUIET, "--data-root", "ds",
          "--out", "out/view"]
CHECK = ["check-dataset", "ds", "--no-progress"]


@dataclass
class Row:
    """One bad input: ``argv`` run in a copy of the workspace after ``setup``, under ``condition``
    (``unwritable:<folder>``, ``fsize:<bytes>``, ``enospc``, ``locked:<output>``); the exit ``code`` and
    the words ``expect`` of its one line (exit 2: the error line; 1: a ``problem:`` line of
    check-dataset; 0: anywhere in the output). ``earlier`` files exist before and must survive."""

    argv: list[str]
    expect: tuple[str, ...]
    code: int = 2
    setup: Callable[[Path], None] | None = None
    condition: str | None = None
    earlier: tuple[str, ...] = ()
    produced: Callable[[Path], bool] | None = None  # exit 0: what the output must be


def write(path: str, data: bytes | str) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        target = w / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
    return setup


def remove(path: str) -> Callable[[Path], None]:
    return lambda w: (w / path).unlink()


def save_array(path: str, array: np.ndarray) -> Callable[[Path], None]:
    return lambda w: Image.fromarray(array).save(w / path)


def steps(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        for s in setups:
            s(w)
    return setup


def truncate(path: str) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        data = (w / path).read_bytes()
        (w / path).write_bytes(data[: len(data) // 2])
    return setup


def tiny_weights(path: str, poison: float | None = None, depth: int | None = None) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        from hummingbird.models.backbones import load_backbone

        name = "timm:vit_tiny_patch16_224" if depth is None else "timm:vit_small_patch16_224"
        state = load_backbone(name, weights="random", **({"depth": depth} if depth else {})).model.state_dict()
        if poison is not None:
            state["blocks.5.mlp.fc1.weight"].view(-1)[:2] = poison
        torch.save(state, w / path)
    return setup


def nan_bank(w: Path) -> None:
    """bank.safetensors with NaN in two feature rows, written past the save check (valid checksum)."""
    from hummingbird.files.tensorfile import read_tensor_file, write_tensor_file
    from hummingbird.memory.bank import tensors_checksum

    tensors, meta = read_tensor_file(w / "bank.safetensors", "hummingbird", "bank")
    tensors["features"][[3, 17]] = float("nan")
    meta["checksum"] = tensors_checksum(tensors)
    write_tensor_file(w / "bank.safetensors", tensors, "hummingbird", meta)


def edit_bank_metadata(**changes) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        from hummingbird.files.tensorfile import read_tensor_file, write_tensor_file

        tensors, meta = read_tensor_file(w / "bank.safetensors", "hummingbird", "bank")
        write_tensor_file(w / "bank.safetensors", tensors, "hummingbird", {**meta, **changes})
    return setup


def flip_tensor_byte(w: Path) -> None:
    data = bytearray((w / "bank.safetensors").read_bytes())
    data[-100] ^= 0xFF
    (w / "bank.safetensors").write_bytes(bytes(data))


def rotated_photo(mask_as_stored: bool = False) -> Callable[[Path], None]:
    """img000 replaced by a 96x64 phone photo stored sideways (EXIF orientation 6) with its mask upright
    (or, ``mask_as_stored``, turned like the stored pixels: a mask that does not match what users see)."""
    def setup(w: Path) -> None:
        image, mask = block_scene(np.random.default_rng(5), 96, 16, 4)
        image, mask = image[:64], mask[:64]
        (w / "ds/images/img000.png").unlink()
        rotated_jpeg(image, w / "ds/images/img000.jpg", 6)
        Image.fromarray(np.rot90(mask) if mask_as_stored else mask).save(w / "ds/masks/img000.png")
    return setup


LATIN1 = "img000\nimg001\nimgø02\n".encode("latin-1")
UTF16 = "img000\nimg001\n".encode("utf-16")
GRAY = np.zeros((64, 64), np.uint8)

ROWS: dict[str, Row] = {
    # ------------------------------------------------------------------ build-memory: the dataset
    "build/no-such-folder": Row([*BUILD[:4], "nowhere", *BUILD[5:]], ("nowhere: dataset folder does not exist",)),
    "build/empty-folder": Row([*BUILD[:4], "empty", *BUILD[5:]], ("empty: dataset folder is empty",),
                              setup=lambda w: (w / "empty").mkdir()),
    "build/images-without-masks": Row(BUILD, ("ds/masks: 2 images have no mask <id>.png: img000.png, img001.png",),
                                      setup=steps(remove("ds/masks/img000.png"), remove("ds/masks/img001.png"))),
    "build/mask-without-image": Row(BUILD, ("ds/masks: 1 masks have no image in ds/images: img003.png",),
                                    setup=remove("ds/images/img003.png")),
    "build/unreadable-image": Row(BUILD, ("ds/images/img001.png: cannot read image, unreadable or truncated",),
                                  setup=write("ds/images/img001.png", b"this is not an image")),
    "build/truncated-image": Row(BUILD, ("ds/images/img002.png: cannot read image",),
                                 setup=truncate("ds/images/img002.png")),
    "build/mask-of-another-size": Row(BUILD, ("ds/masks/img001.png: mask is 48x32 but its image is 64x64",),
                                      setup=save_array("ds/masks/img001.png", np.zeros((32, 48), np.uint8))),
    "build/mask-values-outside-classes": Row(BUILD, ("ds/masks/img000.png: mask values [7, 9] are outside the 4 classes "
                                                     "[0, 3]",),
                                            setup=save_array("ds/masks/img000.png", np.array(
                                                [[7, 9, 255, *[0] * 61]] * 64, np.uint8))),
    "build/colour-mask": Row(BUILD, ("ds/masks/img000.png: mask is a 3-channel colour image", "class indices"),
                             setup=save_array("ds/masks/img000.png", np.zeros((64, 64, 3), np.uint8))),
    "build/image-smaller-than-a-patch": Row(BUILD, ("ds/images/img002.png: image is 12x8, smaller than one 16-px patch",),
                                            setup=steps(save_array("ds/images/img002.png", np.zeros((8, 12, 3), np.uint8)),
                                                        save_array("ds/masks/img002.png", np.zeros((8, 12), np.uint8)))),
    "build/float-image-out-of-range": Row(BUILD, ("img001.tif: float image with values in [1000, 1000]",),
                                          setup=steps(remove("ds/images/img001.png"), lambda w: Image.fromarray(
                                              np.full((64, 64), 1000.0, np.float32)).save(w / "ds/images/img001.tif"))),
    "build/rotated-photo-with-a-sideways-mask": Row(BUILD, ("ds/masks/img000.png: mask is 64x96 but its image is 96x64",
                                                            "EXIF orientation 6"), setup=rotated_photo(mask_as_stored=True)),
    "build/all-pixels-ignored": Row(BUILD, ("ds: no labelled patches found",), setup=lambda w: [
        Image.fromarray(np.full((64, 64), 255, np.uint8)).save(p) for p in (w / "ds/masks").glob("*.png")]),
    # ------------------------------------------------------------------ build-memory: text files
    "build/split-list-unknown-id": Row([*BUILD, "--split", "train"], ("ds/splits/train.txt: 1 ids have no image", "ghost"),
                                       setup=write("ds/splits/train.txt", "img000\nghost\n")),
    "build/split-list-latin-1": Row([*BUILD, "--split", "train"], ("ds/splits/train.txt: not UTF-8 text at byte 17 (0xf8)",),
                                    setup=write("ds/splits/train.txt", LATIN1)),
    "build/split-list-utf-16": Row([*BUILD, "--split", "train"], ("ds/splits/train.txt: not UTF-8 text at byte 0",
                                                                  "UTF-16 byte-order mark"),
                                   setup=write("ds/splits/train.txt", UTF16)),
    "build/split-list-empty": Row([*BUILD, "--split", "train"], ("ds/splits/train.txt: id list is empty",),
                                  setup=write("ds/splits/train.txt", "\r\n  \n")),
    "build/classes-latin-1": Row(BUILD, ("ds/classes.txt: not UTF-8 text at byte 4 (0xf8)", "save it as UTF-8"),
                                 setup=write("ds/classes.txt", "bg\nrød\ngreen\nblue\n".encode("latin-1"))),
    "build/classes-empty": Row(BUILD, ("ds/classes.txt: lists no class names",), setup=write("ds/classes.txt", "\n\n")),
    "build/classes-vs-num-classes": Row([*BUILD, "--num-classes", "3"], ("ds/classes.txt: lists 4 classes but "
                                                                         "--num-classes is 3",)),
    "build/fileset-not-found": Row([*BUILD, "--fileset", "few.txt"], ("few.txt: id list not found",)),
    "build/fileset-is-a-folder": Row([*BUILD, "--fileset", "ds"], ("ds: is a folder, not a file (id list expected)",)),
    "build/fileset-latin-1": Row([*BUILD, "--fileset", "few.txt"], ("few.txt: not UTF-8 text at byte 17",),
                                 setup=write("few.txt", LATIN1)),
    "build/fileset-unknown-ids": Row([*BUILD, "--fileset", "few.txt"], ("few.txt: 2 ids are not in split 'train'",
                                                                        "nope_1, nope_2"),
                                     setup=write("few.txt", "img000\nnope_1\nnope_2\n")),
    "build/fileset-unshipped-seed": Row([*BUILD, "--fileset", "voc:1/128:7"], ("seed 7 is not shipped",)),
    # ------------------------------------------------------------------ build-memory: weights and settings
    "build/weights-not-found": Row([*BUILD, "--weights", "w.pth"], ("w.pth: weights file not found",)),
    "build/weights-folder": Row([*BUILD, "--weights", "ds"], ("ds: --weights is a folder, not a weights file",)),
    "build/weights-random-bytes": Row([*BUILD, "--weights", "w.pth"], ("w.pth: cannot read weights file, not a PyTorch",),
                                      setup=write("w.pth", np.random.default_rng(0).bytes(4096))),
    "build/weights-nan": Row([*BUILD, "--weights", "w.pth"], ("w.pth: tensor blocks.5.mlp.fc1.weight holds non-finite "
                                                              "values: 2 NaN",), setup=tiny_weights("w.pth", float("nan"))),
    "build/weights-of-another-architecture": Row([*BUILD, "--weights", "w.pth"], ("w.pth: weights do not fit this backbone",
                                                                                  "missing keys", "shape mismatches"),
                                                 setup=tiny_weights("w.pth", depth=1)),
    "build/input-size-not-a-patch-multiple": Row([*BUILD, "--input-size", "70"], ("not a multiple of",)),
    "build/memory-size-below-one-patch-per-image": Row([*BUILD, "--memory-size", "2"], ("--memory-size 2 is smaller "
                                                                                        "than one patch per image",)),
    # ------------------------------------------------------------------ build-memory: the output
    "build/out-unwritable": Row(BUILD, ("out/bank.safetensors: cannot write:",), condition="unwritable:out",
                                earlier=("out/bank.safetensors",)),
    "build/out-file-size-limit": Row(BUILD, ("out/bank.safetensors: cannot write: File too large (EFBIG)", "ulimit -f"),
                                     condition="fsize:8192", earlier=("out/bank.safetensors",)),
    "build/out-disk-full": Row(BUILD, ("out/bank.safetensors: cannot write: No space left on device (ENOSPC)",),
                               condition="enospc", earlier=("out/bank.safetensors",)),
    "build/out-is-a-folder": Row(BUILD, ("out/bank.safetensors: cannot write: Is a directory (EISDIR)",),
                                 setup=write("out/bank.safetensors/keep.txt", "a folder of the user's")),
    "build/out-below-a-file": Row([*BUILD[:-1], "notes.txt/bank.safetensors"], ("notes.txt: is a file, not a folder",),
                                  setup=write("notes.txt", "a file of the user's")),
    "build/sharded-out-unwritable": Row([*BUILD[:-1], "out/shards"], ("out/shards: cannot write:",),
                                        condition="unwritable:out", earlier=("out/other.txt",)),
    "build/out-locked-by-another-build": Row(BUILD, ("out/bank.safetensors: another hummingbird process",
                                                     "out/bank.safetensors.lock is held"),
                                             condition="locked:out/bank.safetensors", earlier=("out/bank.safetensors",)),
    # ------------------------------------------------------------------ evaluate
    "evaluate/bank-not-found": Row([*EVAL[:6], "nobank.safetensors", *EVAL[7:]], ("nobank.safetensors: memory bank "
                                                                                  "file not found",)),
    "evaluate/bank-random-bytes": Row(EVAL, ("bank.safetensors: not a readable memory bank",),
                                      setup=write("bank.safetensors", np.random.default_rng(1).bytes(2048)),
                                      earlier=("out/r.json",)),
    "evaluate/bank-truncated": Row(EVAL, ("bank.safetensors: not a readable memory bank",),
                                   setup=truncate("bank.safetensors"), earlier=("out/r.json",)),
    "evaluate/bank-corrupted": Row(EVAL, ("bank.safetensors: bank checksum mismatch",), setup=flip_tensor_byte,
                                   earlier=("out/r.json",)),
    "evaluate/bank-nan-features": Row(EVAL, ("bank.safetensors: 2 of 64 feature rows hold NaN or infinite values "
                                             "(rows 3, 17); images img000, img001",), setup=nan_bank, earlier=("out/r.json",)),
    "evaluate/bank-from-a-newer-format": Row(EVAL, ("bank.safetensors: bank format 99 is newer",),
                                             setup=edit_bank_metadata(format_version=99), earlier=("out/r.json",)),
    "evaluate/bank-of-other-classes": Row(EVAL, ("bank.safetensors: built for other classes", "1: 'red' vs 'rock'"),
                                          setup=write("ds/classes.txt", "bg\nrock\ngreen\nblue\n"), earlier=("out/r.json",)),
    "evaluate/bank-and-train-split": Row([*EVAL, "--train-split", "train"],
                                         ("give --bank BANK or --train-split SPLIT, not both",)),
    "evaluate/overlays-without-predictions": Row([*EVAL, "--save-overlays"], ("--save-overlays needs --save-predictions",)),
    "evaluate/weights-nan": Row([*EVAL, "--weights", "w.pth"], ("w.pth: tensor blocks.5.mlp.fc1.weight holds non-finite",),
                                setup=tiny_weights("w.pth", float("inf")), earlier=("out/r.json",)),
    "evaluate/fileset-latin-1": Row([*EVAL, "--fileset", "few.txt"], ("few.txt: not UTF-8 text at byte 17",),
                                    setup=write("few.txt", LATIN1), earlier=("out/r.json",)),
    "evaluate/split-list-with-bom-and-crlf": Row(EVAL, ("wrote out/r.json",), code=0,
                                                 setup=write("ds/splits/val.txt", "\ufeffimg003 \r\n\r\n")),
    "evaluate/out-unwritable": Row(EVAL, ("out/r.json: cannot write:",), condition="unwritable:out", earlier=("out/r.json",)),
    "evaluate/out-file-size-limit": Row(EVAL, ("out/r.json: cannot write: File too large (EFBIG)",),
                                        condition="fsize:64", earlier=("out/r.json",)),
    "evaluate/out-disk-full": Row(EVAL, ("out/r.json: cannot write: No space left on device (ENOSPC)",),
                                  condition="enospc", earlier=("out/r.json",)),
    "evaluate/save-bank-unwritable": Row([*EVAL[:5], "--train-split", "train", "--save-bank", "out/b2.safetensors",
                                          *TINY, *EVAL[7:], "--no-augment"], ("out/b2.safetensors: cannot write:",),
                                         condition="unwritable:out", earlier=("out/b2.safetensors", "out/r.json")),
    "evaluate/save-predictions-unwritable": Row([*EVAL, "--save-predictions", "out/preds"], ("out/preds: cannot write:",),
                                                condition="unwritable:out", earlier=("out/r.json",)),
    # ------------------------------------------------------------------ segment
    "segment/no-such-image": Row([*SEGMENT[:4], "nothing.png", *SEGMENT[5:]], ("nothing.png: no such image file or folder",)),
    "segment/folder-without-images": Row([*SEGMENT[:4], "ds/splits", *SEGMENT[5:]], ("no images (",)),
    "segment/unreadable-image": Row(SEGMENT, ("ds/images/img003.png: cannot read image",),
                                    setup=write("ds/images/img003.png", b"GIF89a and then nothing")),
    "segment/image-smaller-than-a-patch": Row(SEGMENT, ("ds/images/img003.png: image is 12x8, smaller than one 16-px patch",),
                                              setup=save_array("ds/images/img003.png", np.zeros((8, 12, 3), np.uint8))),
    "segment/float-image-out-of-range": Row([*SEGMENT[:4], "f.tif", *SEGMENT[5:]], ("f.tif: float image with values",),
                                            setup=lambda w: Image.fromarray(np.full((64, 64), -3.0, np.float32)).save(
                                                w / "f.tif")),
    "segment/out-dir-over-its-inputs": Row([*SEGMENT[:-1], "ds/images"], ("--out-dir would write a label map over the "
                                                                          "input image",)),
    "segment/out-dir-unwritable": Row(SEGMENT, ("out/seg: cannot write:",), condition="unwritable:out",
                                      earlier=("out/keep.txt",)),
    "segment/out-dir-is-a-file": Row(SEGMENT, ("out/seg: is a file, not a folder",),
                                     setup=write("out/seg", "a file of the user's")),
    "segment/file-size-limit": Row(SEGMENT, ("out/seg/img003.png: cannot write: File too large (EFBIG)",),
                                   condition="fsize:64", earlier=("out/seg/img003.png",)),
    "segment/disk-full": Row(SEGMENT, ("out/seg/img003.png: cannot write: No space left on device (ENOSPC)",),
                             condition="enospc", earlier=("out/seg/img003.png",)),
    "segment/bank-nan-features": Row(SEGMENT, ("bank.safetensors: 2 of 64 feature rows hold NaN",), setup=nan_bank),
    "segment/weights-folder": Row([*SEGMENT, "--weights", "ds"], ("ds: --weights is a folder",)),
    "segment/rotated-photo-read-upright": Row([*SEGMENT[:4], "ds/images/img000.jpg", *SEGMENT[5:]], ("wrote 1 label maps",),
                                              code=0, setup=rotated_photo(), produced=lambda w: np.array(
                                                  Image.open(w / "out/seg/img000.png")).shape == (64, 96)),
    # ------------------------------------------------------------------ neighbours
    "neighbours/patch-outside-the-grid": Row([*NEIGHBOURS[:5], "--patch", "9,0", *NEIGHBOURS[7:]],
                                             ("--patch 9,0 is outside the 4x4 patch grid",)),
    "neighbours/point-not-two-numbers": Row([*NEIGHBOURS[:5], "--point", "12", *NEIGHBOURS[7:]],
                                            ("--point '12': expected two numbers separated by a comma",)),
    "neighbours/no-such-image": Row([*NEIGHBOURS[:4], "nothing.png", *NEIGHBOURS[5:]], ("nothing.png: image file not found",)),
    "neighbours/data-root-moved": Row([*NEIGHBOURS, "--data-root", "moved"], ("the bank's source images are not at "
                                                                               "'moved'; pass --data-root",)),
    "neighbours/source-image-gone": Row([*NEIGHBOURS[:4], "q.png", *NEIGHBOURS[5:]], ("source image 3 of the bank is "
                                                                                       "missing",),
                                        setup=lambda w: [shutil.copy(w / "ds/images/img003.png", w / "q.png"),
                                                         (w / "ds/images/img003.png").unlink(),
                                                         (w / "ds/masks/img003.png").unlink()]),
    "neighbours/out-unwritable": Row(NEIGHBOURS, ("out/n.png: cannot write:",), condition="unwritable:out",
                                     earlier=("out/n.png",)),
    "neighbours/out-not-an-image-name": Row([*NEIGHBOURS[:-1], "out/n.txt"], ("out/n.txt: unknown image suffix '.txt'",)),
    "neighbours/file-size-limit": Row(NEIGHBOURS, ("out/n.png: cannot write: File too large (EFBIG)",),
                                      condition="fsize:64", earlier=("out/n.png",)),
    # ------------------------------------------------------------------ viewer
    "viewer/no-such-image": Row([*VIEWER[:4], "nothing.png", *VIEWER[5:]], ("nothing.png: no such image file or folder",)),
    "viewer/data-root-moved": Row([*VIEWER, "--data-root", "moved"], ("the bank's source images are not at 'moved'",)),
    "viewer/out-unwritable": Row(VIEWER, ("out/view", "cannot write:"), condition="unwritable:out",
                                 earlier=("out/keep.txt",)),
    "viewer/out-is-a-file": Row(VIEWER, ("out/view: is a file, not a folder",),
                                setup=write("out/view", "a file of the user's")),
    "viewer/disk-full": Row(VIEWER, ("out/view/images/query000.jpg: cannot write: No space left on device (ENOSPC)",),
                            condition="enospc", earlier=("out/view/index.html",)),
    "viewer/bank-nan-features": Row(VIEWER, ("bank.safetensors: 2 of 64 feature rows hold NaN",), setup=nan_bank),
    # ------------------------------------------------------------------ check-dataset (exit 1: problems listed)
    "check/no-such-folder": Row(["check-dataset", "nowhere", "--no-progress"], ("nowhere: dataset folder does not exist",),
                                code=1),
    "check/classes-latin-1": Row(CHECK, ("ds/classes.txt: not UTF-8 text at byte 4 (0xf8)",), code=1,
                                 setup=write("ds/classes.txt", "bg\nrød\ngreen\nblue\n".encode("latin-1"))),
    "check/split-list-utf-16": Row([*CHECK, "--split", "train"], ("ds/splits/train.txt: not UTF-8 text at byte 0",), code=1,
                                   setup=write("ds/splits/train.txt", UTF16)),
    "check/rotated-photo-with-a-sideways-mask": Row(CHECK, ("mask is 64x96 but its image is 96x64", "EXIF orientation 6"),
                                                    code=1, setup=rotated_photo(mask_as_stored=True)),
    "check/rotated-photo-noted": Row(CHECK, ("1 images carry an EXIF rotation and are read upright",), code=0,
                                     setup=rotated_photo()),
    "check/mask-values-and-unreadable-image-at-once": Row(CHECK, ("ds/images/img001.png: cannot read image",
                                                                  "ds/masks/img002.png: mask values [7]"), code=1,
                                                          setup=steps(write("ds/images/img001.png", b"nope"), save_array(
                                                              "ds/masks/img002.png", np.full((64, 64), 7, np.uint8)))),
    "check/num-classes-vs-classes-txt": Row([*CHECK, "--num-classes", "5"], ("lists 4 classes but --num-classes is 5",),
                                            code=1),
    "check/out-unwritable": Row([*CHECK, "--out", "out/report.json"], ("out/report.json: cannot write:",),
                                condition="unwritable:out", earlier=("out/report.json",)),
    "check/out-disk-full": Row([*CHECK, "--out", "out/report.json"], ("out/report.json: cannot write: No space left",),
                               condition="enospc", earlier=("out/report.json",)),
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """``ds/`` (a 4-image folder dataset, splits train 3 / val 1) and ``bank.safetensors`` built from it."""
    root = tmp_path_factory.mktemp("matrix")
    write_block_dataset(root / "ds", n_train=3, n_val=1)
    assert main([*BUILD[:-1], str(root / "bank.safetensors"), "--data-root", str(root / "ds"),
                 "--split", "all"]) == 0
    return root


def snapshot(folder: Path) -> dict[Path, bytes]:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@contextmanager
def failing_disk(monkeypatch):
    """Every writer (safetensors, JSON, Pillow) writes part of its file, then fails as a full disk makes it."""
    from safetensors import SafetensorError

    import hummingbird.files.tensorfile as tensorfile

    def partial(target) -> None:
        if isinstance(target, (str, Path)):
            Path(target).write_bytes(b"\0" * 64)
        else:
            target.write("{" if "b" not in getattr(target, "mode", "b") else b"\0")

    def save_file(tensors, filename, metadata=None):
        partial(filename)
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                              '"No space left on device" })')

    def dump(obj, handle, **kwargs):
        partial(handle)
        raise OSError(errno.ENOSPC, "No space left on device")

    def save(self, target, *args, **kwargs):
        partial(target)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tensorfile, "save_file", save_file)
    monkeypatch.setattr(json, "dump", dump)
    monkeypatch.setattr(Image.Image, "save", save)
    yield


@contextmanager
def file_size_limit(limit: int):
    """RLIMIT_FSIZE lowered to ``limit`` bytes for the block (SIGXFSZ ignored, as ``hummingbird`` does)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def under(condition: str | None, w: Path, monkeypatch, stack: ExitStack) -> None:
    if condition is None:
        return
    kind, _, arg = condition.partition(":")
    if kind == "unwritable":
        (w / arg).mkdir(exist_ok=True)
        stack.enter_context(unwritable(w / arg))
    elif kind == "fsize":
        stack.enter_context(file_size_limit(int(arg)))
    elif kind == "enospc":
        stack.enter_context(failing_disk(monkeypatch))
    elif kind == "locked":
        from hummingbird.files.locking import exclusive_output

        stack.enter_context(exclusive_output(w / arg))
    else:
        raise ValueError(condition)


def prepare(row, workspace: Path, tmp_path: Path, monkeypatch) -> tuple[Path, dict[Path, bytes]]:
    """A copy of the workspace as the working directory, with the row's earlier outputs and setup; its
    files before the row runs."""
    w = tmp_path / "w"
    shutil.copytree(workspace, w)
    monkeypatch.chdir(w)
    for path in row.earlier:
        write(path, f"an earlier {path} of the user's")(w)
    if row.setup:
        row.setup(w)
    return w, snapshot(w)


def assert_nothing_lost(w: Path, before: dict[Path, bytes]) -> None:
    after = snapshot(w)
    assert {path: after.get(path) for path in before} == before  # nothing the user had changed or removed
    assert leftovers(w) == []  # no temporary or lock file anywhere


@pytest.mark.parametrize("name", sorted(ROWS))
def test_bad_input(name, workspace, tmp_path, monkeypatch, capsys):
    row = ROWS[name]
    w, before = prepare(row, workspace, tmp_path, monkeypatch)
    with ExitStack() as stack:
        under(row.condition, w, monkeypatch, stack)
        code = main(row.argv)
        out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == row.code, out + err
    if code == 2:
        lines = [line for line in err.splitlines() if line.startswith("hummingbird ")]
        assert len(lines) == 1, err
        shown = lines[0]
        assert shown.startswith(f"hummingbird {row.argv[0]}: error: ")
    elif code == 1:
        shown = "\n".join(line for line in out.splitlines() if line.startswith("  problem: "))
    else:
        shown = out + err
        assert row.produced is None or row.produced(w)
    assert all(words in shown for words in row.expect), shown
    assert_nothing_lost(w, before)


def test_the_matrix_covers_every_command_and_the_python_api():
    commands = {row.argv[0] for row in ROWS.values()}
    assert commands == {"build-memory", "evaluate", "segment", "neighbours", "viewer", "check-dataset"}
    assert {name.split("/")[0] for name in API_ROWS} == {"load", "from_dataset", "segment", "save", "evaluate"}
    assert len(ROWS) + len(API_ROWS) >= 60


# ----------------------------------------------------------------------------- the Python API

API_TINY = {"backbone": "timm:vit_tiny_patch16_224", "weights": "random", "input_size": 64, "progress": False}


@dataclass
class ApiRow:
    """One bad input given to :class:`hummingbird.Segmenter`: ``call(w)`` raises ``error`` (a
    :class:`~hummingbird.errors.HummingbirdError`) whose one-line message holds ``expect``; with
    ``error=None`` it succeeds and ``check`` holds for its result."""

    call: Callable[[Path], object]
    expect: tuple[str, ...] = ()
    error: str | None = None
    setup: Callable[[Path], None] | None = None
    condition: str | None = None
    earlier: tuple[str, ...] = ()
    check: Callable[[object], bool] | None = None


def segmenter(w: Path, path: str = "bank.safetensors", **overrides):
    from hummingbird import Segmenter

    return Segmenter.load(path, **overrides)


def built(w: Path, split: str = "train", **keywords):
    from hummingbird import Segmenter

    return Segmenter.from_dataset("folder", "ds", split, augment=False, **{**API_TINY, **keywords})


API_ROWS: dict[str, ApiRow] = {
    "load/bank-not-found": ApiRow(lambda w: segmenter(w, path="nobank.safetensors"),
                                  ("nobank.safetensors: memory bank file not found",), "BankError"),
    "load/bank-nan-features": ApiRow(segmenter, ("bank.safetensors: 2 of 64 feature rows hold NaN",), "BankError",
                                     setup=nan_bank),
    "load/weights-inf": ApiRow(lambda w: segmenter(w, weights="w.pth"), ("w.pth: tensor blocks.5.mlp.fc1.weight holds "
                                                                        "non-finite values: 2 infinite",),
                               "CheckpointError", setup=tiny_weights("w.pth", float("inf"))),
    "load/weights-folder": ApiRow(lambda w: segmenter(w, weights="ds"), ("ds: weights= is a folder",), "CheckpointError"),
    "from_dataset/classes-latin-1": ApiRow(built, ("ds/classes.txt: not UTF-8 text at byte 4 (0xf8)",), "DatasetError",
                                           setup=write("ds/classes.txt", "bg\nrød\ngreen\nblue\n".encode("latin-1"))),
    "from_dataset/split-list-with-bom-and-crlf": ApiRow(built, check=lambda s: s.memory_bank().metadata["image_ids"] == [
        "img000", "img001", "img002"], setup=write("ds/splits/train.txt", "\ufeffimg000\r\nimg001 \r\nimg002\r\n")),
    "from_dataset/rotated-photo-with-a-sideways-mask": ApiRow(built, ("mask is 64x96 but its image is 96x64",
                                                                      "EXIF orientation 6"), "DatasetError",
                                                              setup=rotated_photo(mask_as_stored=True)),
    "segment/no-such-image": ApiRow(lambda w: segmenter(w).segment("nothing.png"), ("nothing.png: image file not found",),
                                    "ConfigError"),
    "segment/rotated-photo-path-read-upright": ApiRow(lambda w: segmenter(w).segment("ds/images/img000.jpg"),
                                                      check=lambda labels: labels.shape == (64, 96),
                                                      setup=rotated_photo()),
    "segment/rotated-photo-opened-by-the-caller": ApiRow(
        lambda w: segmenter(w).segment(Image.open("ds/images/img000.jpg")), check=lambda labels: labels.shape == (64, 96),
        setup=rotated_photo()),
    "segment/tensor-with-nan": ApiRow(lambda w: segmenter(w).segment(torch.full((3, 64, 64), float("nan"))),
                                      ("image (float32 array): float image holds NaN or infinite values",), "ConfigError"),
    "segment/tensor-of-0-255-values-read-as-a-float-image-file": ApiRow(
        lambda w: segmenter(w).segment(torch.full((3, 64, 64), 200.0)), check=lambda labels: labels.shape == (64, 64)),
    "segment/normalised-tensor": ApiRow(lambda w: segmenter(w).segment(torch.full((3, 64, 64), -1.5)),
                                        ("image (float32 array): float image with values in [-1.5, -1.5], neither [0, 1] "
                                         "nor [0, 255]; give the image before normalisation",), "ConfigError"),
    "save/unwritable-folder": ApiRow(lambda w: segmenter(w).save("out/bank.safetensors"), ("out/bank.safetensors: cannot "
                                                                                          "write:",), "OutputError",
                                     condition="unwritable:out", earlier=("out/bank.safetensors",)),
    "save/file-size-limit": ApiRow(lambda w: segmenter(w).save("out/bank.safetensors"),
                                   ("out/bank.safetensors: cannot write: File too large (EFBIG)",), "OutputError",
                                   condition="fsize:8192", earlier=("out/bank.safetensors",)),
    "save/disk-full": ApiRow(lambda w: segmenter(w).save("out/bank.safetensors"),
                             ("out/bank.safetensors: cannot write: No space left on device (ENOSPC)",), "OutputError",
                             condition="enospc", earlier=("out/bank.safetensors",)),
    "evaluate/save-predictions-unwritable": ApiRow(
        lambda w: segmenter(w).evaluate(segmenter(w).open_dataset("folder", "ds", "val"), save_predictions="out/preds"),
        ("out/preds: cannot write:",), "OutputError", condition="unwritable:out", earlier=("out/keep.txt",)),
}


@pytest.mark.parametrize("name", sorted(API_ROWS))
def test_bad_input_python_api(name, workspace, tmp_path, monkeypatch):
    from hummingbird import errors

    row = API_ROWS[name]
    w, before = prepare(row, workspace, tmp_path, monkeypatch)
    with ExitStack() as stack:
        under(row.condition, w, monkeypatch, stack)
        if row.error is None:
            result = row.call(w)
        else:
            with pytest.raises(getattr(errors, row.error)) as caught:
                row.call(w)
    if row.error is None:
        assert row.check(result)
    else:
        message = str(caught.value)
        assert "\n" not in message and all(words in message for words in row.expect), message
    assert_nothing_lost(w, before)
