"""Bad input given to the command line: refused in one line naming the option or file (exit 2), and
nothing a user already had is overwritten or silently mis-read (issue 10, defects 1-9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hummingbird.cli.main import main

NEEDS = {  # the required options of each command, so that only the option under test is wrong
    "build-memory": ["--dataset", "folder", "--data-root", "ds", "--out", "OUT"],
    "evaluate": ["--dataset", "folder", "--data-root", "ds", "--bank", "b.safetensors", "--out", "OUT"],
    "segment": ["--bank", "b.safetensors", "--images", "x.png", "--out-dir", "OUT"],
    "neighbours": ["--bank", "b.safetensors", "--image", "x.png", "--patch", "0,0", "--out", "OUT"],
    "viewer": ["--bank", "b.safetensors", "--images", "x.png", "--out", "OUT"],
    "check-dataset": ["ds", "--out", "OUT"],
}

OUT_OF_RANGE = [  # (command, option, value)
    ("evaluate", "--k", "0"), ("segment", "--k", "-3"), ("evaluate", "--temperature", "0"),
    ("evaluate", "--temperature", "-0.5"), ("segment", "--temperature", "nan"), ("evaluate", "--temperature", "inf"),
    ("build-memory", "--batch-size", "0"), ("evaluate", "--num-workers", "-1"), ("segment", "--alpha", "1.5"),
    ("segment", "--alpha", "-0.1"), ("build-memory", "--memory-size", "0"), ("build-memory", "--augmentation-epochs", "0"),
    ("build-memory", "--input-size", "0"), ("evaluate", "--nprobe", "0"), ("evaluate", "--refine", "0"),
    ("viewer", "--max-images", "0"), ("check-dataset", "--patch-size", "0"), ("build-memory", "--shard-images", "0"),
    ("build-memory", "--num-classes", "0"), ("check-dataset", "--num-classes", "300"), ("evaluate", "--clusters", "0"),
    ("evaluate", "--probe-epochs", "0"), ("evaluate", "--probe-lr", "0"), ("build-memory", "--fungi-negatives", "0"),
    ("build-memory", "--fungi-temperature", "0"), ("build-memory", "--fungi-support-fraction", "0"),
    ("build-memory", "--fungi-support-fraction", "1.5"), ("build-memory", "--fungi-dim", "0"),
    ("build-memory", "--fungi-pca-dim", "-1"), ("build-memory", "--fungi-latent-dim", "0"),
    ("build-memory", "--seed", "-1"), ("evaluate", "--k", "three"), ("segment", "--batch-size", "2.5"),
]


@pytest.mark.parametrize("command,option,value", OUT_OF_RANGE)
def test_numeric_options_are_refused_at_parse_time(tmp_path, capsys, command, option, value):
    out = tmp_path / "earlier_output.json"
    out.write_bytes(b'{"mIoU": 0.5}\n')  # a result a user already has
    argv = [command, *[str(out) if a == "OUT" else a for a in NEEDS[command]], option, value]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and f"hummingbird {command}: error: argument {option}: must be" in err, err
    assert repr(value) in err and "Traceback" not in err
    assert out.read_bytes() == b'{"mIoU": 0.5}\n'


# ----------------------------------------------------------------------------- shared set-up

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from conftest import write_folder_dataset  # noqa: E402
from PIL import Image  # noqa: E402

COMMON = ["--weights", "random", "--num-workers", "0", "--no-progress"]


def run(argv, capsys):
    """``main(argv)`` → (exit code, stdout, stderr); never a traceback."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("hummingbird ")]
    assert len(lines) == 1, err
    return lines[0]


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    """A folder dataset and a bank built from it (random-init ViT-S/16, 64 px)."""
    root = tmp_path_factory.mktemp("blocks")
    ds = write_folder_dataset(root / "ds", n_train=3, n_val=1)
    bank = root / "bank.safetensors"
    assert main(["build-memory", "--dataset", "folder", "--data-root", str(ds), "--split", "all",
                 "--backbone", "dino_vits16", "--input-size", "64", "--no-augment", "--out", str(bank), *COMMON]) == 0
    return ds, bank


# ----------------------------------------------------------------------------- 1, 2: segment outputs

def test_segment_refuses_to_write_over_its_input_images(blocks, tmp_path, capsys):
    ds, bank = blocks
    pngs = tmp_path / "pngs"
    shutil.copytree(ds / "images", pngs)
    before = snapshot(pngs)
    code, _, err = run(["segment", "--bank", bank, "--images", pngs, "--out-dir", pngs, *COMMON], capsys)
    assert code == 2
    line = one_line(err)
    assert f"{pngs / 'img000.png'}: --out-dir would write a label map over the input image" in line
    assert snapshot(pngs) == before  # every input byte for byte, and no summary.json or label map added


def test_segment_writes_label_maps_beside_inputs_under_other_names_when_allowed(blocks, tmp_path, capsys):
    ds, bank = blocks
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(ds / "images" / "img000.png").convert("RGB").save(photos / "x.jpg", quality=95)
    before = snapshot(photos)
    code, out, _ = run(["segment", "--bank", bank, "--images", photos, "--out-dir", photos, *COMMON], capsys)
    assert code == 0 and "wrote 1 label maps for 1 images" in out
    assert snapshot(photos)[Path("x.jpg")] == before[Path("x.jpg")] and (photos / "x.png").is_file()


def test_inputs_with_the_same_stem_get_distinct_outputs_and_a_true_count(blocks, tmp_path, capsys):
    ds, bank = blocks
    for sub, source in (("a", "img000.png"), ("b", "img001.png")):
        (tmp_path / sub).mkdir()
        shutil.copy(ds / "images" / source, tmp_path / sub / "x.png")
    Image.open(ds / "images" / "img002.png").convert("RGB").save(tmp_path / "b" / "x.jpg", quality=95)
    out_dir = tmp_path / "out"
    code, out, _ = run(["segment", "--bank", bank, "--images", tmp_path / "a" / "x.png", tmp_path / "b",
                        "--out-dir", out_dir, "--overlay", *COMMON], capsys)
    assert code == 0 and "wrote 3 label maps and overlays for 3 images" in out
    written = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.png"))
    assert written == ["a/x.png", "a/x_overlay.png", "b/x_jpg.png", "b/x_jpg_overlay.png", "b/x_png.png",
                       "b/x_png_overlay.png"]
    summary = json.loads((out_dir / "summary.json").read_text())
    assert sorted(summary["class_fractions"]) == ["a/x.png", "b/x.jpg", "b/x.png"]
    assert summary["label_maps"]["b/x.jpg"] == "b/x_jpg.png"
    # the two x.png inputs are different images: their label maps are their own
    a, b = (np.array(Image.open(out_dir / p)) for p in ("a/x.png", "b/x_png.png"))
    assert a.shape == b.shape == (64, 64) and not np.array_equal(a, b)


# ----------------------------------------------------------------------------- 3: high bit depth

def _as_16_bit(path, out):
    """The grayscale of ``path`` stored as a 16-bit PNG (value * 257, so exactly 8-bit data in 16 bits)."""
    gray = np.array(Image.open(path).convert("L")).astype(np.uint16) * 257
    Image.fromarray(gray).save(out)
    assert Image.open(out).mode == "I;16"
    return gray


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    ds = write_folder_dataset(tmp_path / "ds", n_train=3, n_val=1)
    gray16 = _as_16_bit(ds / "images" / "img000.png", ds / "images" / "img000.png")
    from hummingbird.datasets.registry import load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = np.array(load_dataset("folder", ds, "all").read_image(0))
    assert image.shape == (64, 64, 3) and (image == (gray16 // 257)[..., None]).all()
    assert len(np.unique(image)) > 1  # not one white image


def test_segment_of_a_16_bit_png_equals_its_8_bit_twin(blocks, tmp_path, capsys):
    ds, bank = blocks
    eight, sixteen = tmp_path / "eight", tmp_path / "sixteen"
    eight.mkdir(), sixteen.mkdir()
    Image.open(ds / "images" / "img001.png").convert("L").save(eight / "g.png")
    _as_16_bit(ds / "images" / "img001.png", sixteen / "g.png")
    for folder in (eight, sixteen):
        assert run(["segment", "--bank", bank, "--images", folder, "--out-dir", folder / "seg", *COMMON], capsys)[0] == 0
    assert (sixteen / "seg" / "g.png").read_bytes() == (eight / "seg" / "g.png").read_bytes()


@pytest.mark.parametrize("mode", ["F01", "F255", "I", "L", "CMYK", "P", "RGBA", "LA"])
def test_other_pixel_formats_read_as_8_bit_rgb(tmp_path, mode):
    from hummingbird.datasets.imageio import read_rgb

    rgb = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    gray = np.array(Image.fromarray(rgb).convert("L"))
    path = tmp_path / ("x.tif" if mode[0] in "FI" else "x.png" if mode != "CMYK" else "x.jpg")
    if mode == "F01":
        Image.fromarray(gray.astype(np.float32) / 255).save(path)
    elif mode == "F255":
        Image.fromarray(gray.astype(np.float32)).save(path)
    elif mode == "I":
        Image.fromarray(gray.astype(np.int32) * 257).save(path)
    else:
        Image.fromarray(rgb).convert(mode).save(path, **({"quality": 100} if mode == "CMYK" else {}))
    image = np.array(read_rgb(path)).astype(int)
    expected = gray[..., None] if mode[0] in "FI" else np.array(Image.open(path).convert("RGB")).astype(int)
    assert image.shape == (16, 24, 3) and np.abs(image - expected).max() <= 1


@pytest.mark.filterwarnings("ignore:.*I;16 image scaled to 8 bits")  # the one conversion warning, expected
def test_float_image_out_of_range_is_refused_and_reported(tmp_path, capsys):
    ds = write_folder_dataset(tmp_path / "ds", n_train=3, n_val=1)
    Image.fromarray(np.full((64, 64), 1000.0, np.float32)).save(ds / "images" / "img003.tif")
    (ds / "images" / "img003.png").unlink()
    _as_16_bit(ds / "images" / "img001.png", ds / "images" / "img001.png")
    report = tmp_path / "report.json"
    code, out, _ = run(["check-dataset", ds, "--out", report, "--no-progress"], capsys)
    assert code == 1
    problems = json.loads(report.read_text())["problems"]
    assert problems == [f"{ds / 'images' / 'img003.tif'}: float image with values in [1000, 1000], neither "
                        f"[0, 1] nor [0, 255]; save it as an 8- or 16-bit image"]
    assert json.loads(report.read_text())["scaled_images"] == [f"{ds / 'images' / 'img001.png'} (I;16)"]
    assert "1 images have 16-bit, 32-bit or float pixels and will be scaled to 8 bits" in out
    bank = tmp_path / "bank.safetensors"
    bank.write_bytes(b"an earlier bank")
    code, _, err = run(["build-memory", "--dataset", "folder", "--data-root", ds, "--split", "all",
                        "--backbone", "dino_vits16", "--input-size", "64", "--out", bank, *COMMON], capsys)
    assert code == 2 and "img003.tif: float image with values in [1000, 1000]" in one_line(err)
    assert bank.read_bytes() == b"an earlier bank"


# ----------------------------------------------------------------------------- 4: VOC layout, own classes

def _rock_voc(root, classes_file=True, bad_value=None):
    """A VOC-layout dataset with 4 classes of its own (masks 0..3, 255 borders)."""
    voc = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / d).mkdir(parents=True)
    rng = np.random.default_rng(3)
    ids = [f"rock_{i:03d}" for i in range(4)]
    for n, i in enumerate(ids):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(voc / "JPEGImages" / f"{i}.jpg")
        mask = np.zeros((48, 64), np.uint8)
        mask[:, 16:32], mask[:, 32:48], mask[:, 48:] = 1, 2, 3
        mask[24] = 255
        if bad_value is not None and n == 2:
            mask[0, 0] = bad_value
        Image.fromarray(mask).save(voc / "SegmentationClass" / f"{i}.png")
    (voc / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids[:3]) + "\n")
    (voc / "ImageSets/Segmentation/val.txt").write_text(ids[3] + "\n")
    if classes_file:
        (voc / "classes.txt").write_text("background\nrock\nsand\nwater\n")
    return root


def _voc_build(root, out, capsys, *extra):
    return run(["build-memory", "--dataset", "voc", "--data-root", root, "--split", "train", "--backbone",
                "dino_vits16", "--input-size", "64", "--no-augment", "--out", out, *COMMON, *extra], capsys)


def test_voc_layout_takes_the_classes_of_its_classes_txt(tmp_path, capsys):
    from hummingbird.memory.bank import MemoryBank

    root = _rock_voc(tmp_path / "rocks")
    bank = tmp_path / "bank.safetensors"
    assert _voc_build(root, bank, capsys)[0] == 0
    assert MemoryBank.load(bank).class_names == ["background", "rock", "sand", "water"]
    code, out, _ = run(["evaluate", "--dataset", "voc", "--data-root", root, "--split", "val", "--bank", bank,
                        "--out", tmp_path / "r.json", *COMMON], capsys)
    assert code == 0 and set(json.loads((tmp_path / "r.json").read_text())["per_class_iou"]) == {
        "background", "rock", "sand", "water"}


def test_voc_layout_takes_num_classes(tmp_path, capsys):
    from hummingbird.memory.bank import MemoryBank

    root = _rock_voc(tmp_path / "rocks", classes_file=False)
    bank = tmp_path / "bank.safetensors"
    assert _voc_build(root, bank, capsys, "--num-classes", "4")[0] == 0
    assert MemoryBank.load(bank).class_names == ["class_0", "class_1", "class_2", "class_3"]


def test_voc_layout_mask_value_beyond_its_classes_is_an_error(tmp_path, capsys):
    root = _rock_voc(tmp_path / "rocks", bad_value=5)
    bank = tmp_path / "bank.safetensors"
    bank.write_bytes(b"an earlier bank")
    code, _, err = _voc_build(root, bank, capsys)
    assert code == 2
    assert "rock_002.png: mask values [5] are outside the 4 classes [0, 3]" in one_line(err)
    assert bank.read_bytes() == b"an earlier bank"


# ----------------------------------------------------------------------------- 6: offline, no --weights

def test_offline_without_weights_or_cache_fails_at_once_in_one_line(blocks, tmp_path):
    ds, _ = blocks
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE", "HUMMINGBIRD_"))
           and k.lower() not in ("https_proxy", "http_proxy", "all_proxy")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT="http://127.0.0.1:9")  # nothing listens on port 9
    out = tmp_path / "bank.safetensors"
    out.write_bytes(b"an earlier bank")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hummingbird", "build-memory", "--dataset", "folder",
                           "--data-root", str(ds), "--backbone", "dino_vits16", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr  # one line: no hub retries, no traceback
    assert "dino_vits16" in proc.stderr and "127.0.0.1:9 cannot be reached" in proc.stderr
    assert "then give it: --weights dino_deitsmall16_pretrain.pth" in proc.stderr  # where to get them, and how
    assert out.read_bytes() == b"an earlier bank" and not Path(f"{out}.lock").exists()
    print(f"offline failure after {seconds:.1f} s (interpreter and torch start-up included)")


def test_pretrained_weights_come_from_the_local_cache_without_network(tmp_path):
    from safetensors.torch import save_file

    from hummingbird.models.backbones import load_backbone

    state = load_backbone("dino_vits16", weights="random", seed=5).model.state_dict()
    snapshot_dir = tmp_path / "hf" / "hub" / "models--timm--vit_small_patch16_224.dino" / "snapshots" / ("0" * 40)
    snapshot_dir.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot_dir / "model.safetensors"))
    (snapshot_dir.parents[1] / "refs").mkdir()
    (snapshot_dir.parents[1] / "refs" / "main").write_text("0" * 40)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT="http://127.0.0.1:9")
    code = ("import torch; from hummingbird.models.backbones import load_backbone; "
            "e = load_backbone('dino_vits16'); print(e.weights_id, float(e.model.blocks[0].attn.qkv.weight.sum()))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    weights_id, total = proc.stdout.split()
    assert weights_id == "timm:vit_small_patch16_224.dino"
    assert float(total) == pytest.approx(float(state["blocks.0.attn.qkv.weight"].sum()), abs=1e-3)


# ----------------------------------------------------------------------------- 7: FUNGI support path

FUNGI = ["--features", "fungi", "--fungi-objectives", "infonce", "--fungi-dim", "64"]


def test_fungi_bank_finds_its_support_from_another_directory(tmp_path, monkeypatch, capsys):
    ds = write_folder_dataset(tmp_path / "ds", n_train=3, n_val=1)
    built, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    built.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(built)
    assert run(["build-memory", "--dataset", "folder", "--data-root", ds, "--split", "train", "--backbone",
                "dino_vits16", "--input-size", "64", "--no-augment", "--fungi-support", "support.safetensors",
                "--out", "bank.safetensors", *FUNGI, *COMMON], capsys)[0] == 0
    monkeypatch.chdir(elsewhere)
    evaluate = ["evaluate", "--dataset", "folder", "--data-root", ds, "--k", "5", *COMMON]
    code, _, err = run([*evaluate, "--bank", built / "bank.safetensors", "--out", "r1.json"], capsys)
    assert code == 0, err
    # the bank and its support moved together to another folder: found beside the bank
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("bank.safetensors", "support.safetensors"):
        (built / name).rename(moved / name)
    code, _, err = run([*evaluate, "--bank", moved / "bank.safetensors", "--out", "r2.json"], capsys)
    assert code == 0, err
    assert json.loads(Path("r1.json").read_text())["mIoU"] == json.loads(Path("r2.json").read_text())["mIoU"]
    # another support file beside the bank: the SHA-256 check still refuses it, the earlier result is kept
    support = moved / "support.safetensors"
    support.write_bytes(support.read_bytes()[:-4] + b"    ")
    before = Path("r2.json").read_bytes()
    code, _, err = run([*evaluate, "--bank", moved / "bank.safetensors", "--out", "r2.json"], capsys)
    assert code == 2 and "support.safetensors" in one_line(err)
    assert "differs from the one the bank was built with" in err or "readable" in err
    assert Path("r2.json").read_bytes() == before


def test_bank_finds_its_weights_file_from_another_directory(tmp_path, monkeypatch, capsys):
    import torch

    from hummingbird.models.backbones import load_backbone

    ds = write_folder_dataset(tmp_path / "ds", n_train=3, n_val=1)
    built, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    built.mkdir(), elsewhere.mkdir()
    torch.save(load_backbone("dino_vits16", weights="random", seed=5).model.state_dict(), built / "vits16.pth")
    monkeypatch.chdir(built)
    local = ["--num-workers", "0", "--no-progress"]
    assert run(["build-memory", "--dataset", "folder", "--data-root", ds, "--split", "train", "--backbone",
                "dino_vits16", "--weights", "vits16.pth", "--input-size", "64", "--no-augment",
                "--out", "bank.safetensors", *local], capsys)[0] == 0
    monkeypatch.chdir(elsewhere)
    image = Path(ds) / "images" / "img000.png"
    segment = ["segment", "--bank", built / "bank.safetensors", "--images", image, "--k", "3", *local]
    code, _, err = run([*segment, "--out-dir", "a"], capsys)  # no --weights: the bank's own file
    assert code == 0, err
    # moved together with the bank: found beside it
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("bank.safetensors", "vits16.pth"):
        (built / name).rename(moved / name)
    segment[2] = moved / "bank.safetensors"
    assert run([*segment, "--out-dir", "b"], capsys)[0] == 0
    assert Path("a/img000.png").read_bytes() == Path("b/img000.png").read_bytes()
    # other weights under the same name: refused by the bank's SHA-256 record, in one line naming the bank
    torch.save(load_backbone("dino_vits16", weights="random", seed=6).model.state_dict(), moved / "vits16.pth")
    code, _, err = run([*segment, "--out-dir", "c"], capsys)
    assert code == 2 and "bank.safetensors" in one_line(err) and "weights" in one_line(err)
    assert not Path("c").exists()


# ----------------------------------------------------------------------------- 8: weights of random bytes

def test_weights_file_of_random_bytes_is_named_as_not_a_checkpoint(blocks, tmp_path, capsys):
    ds, _ = blocks
    weights = tmp_path / "random.pth"
    weights.write_bytes(np.random.default_rng(0).bytes(4096))
    out = tmp_path / "bank.safetensors"
    out.write_bytes(b"an earlier bank")
    code, _, err = run(["build-memory", "--dataset", "folder", "--data-root", ds, "--backbone", "dino_vits16",
                        "--weights", weights, "--out", out, "--no-progress"], capsys)
    assert code == 2
    assert f"{weights}: cannot read weights file, not a PyTorch (.pth/.pt/.bin) or safetensors checkpoint" in one_line(err)
    assert "IndexError" not in err and out.read_bytes() == b"an earlier bank"


# ----------------------------------------------------------------------------- 9: two writers of one --out

def test_second_build_writing_the_same_out_is_refused(tmp_path, capsys):
    from hummingbird.memory.bank import MemoryBank

    ds = write_folder_dataset(tmp_path / "big", n_train=40, n_val=0, size=128)
    out = tmp_path / "bank.safetensors"
    first = [sys.executable, "-m", "hummingbird", "build-memory", "--dataset", "folder", "--data-root", str(ds),
             "--split", "all", "--backbone", "dino_vits16", "--weights", "random", "--input-size", "128",
             "--batch-size", "2", "--num-workers", "0", "--seed", "1", "--out", str(out)]
    proc = subprocess.Popen(first, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        seen, deadline = "", time.time() + 240
        while "memory epoch" not in seen and time.time() < deadline and proc.poll() is None:
            seen += proc.stderr.read(1)
        assert "memory epoch" in seen, seen
        code, _, err = run(["build-memory", "--dataset", "folder", "--data-root", ds, "--split", "all",
                            "--backbone", "dino_vits16", "--input-size", "64", "--seed", "2", "--out", out,
                            *COMMON], capsys)
        assert code == 2
        line = one_line(err)
        assert f"{out}: another hummingbird process (pid {proc.pid}) is writing this --out" in line
        assert f"{out}.lock" in line
    finally:
        _, rest = proc.communicate(timeout=600)
    assert proc.returncode == 0, rest
    assert MemoryBank.load(out).metadata["seed"] == 1  # the first build's bank, complete
    assert not Path(f"{out}.lock").exists()


def test_sharded_output_folder_is_locked_too(blocks, tmp_path, capsys):
    from hummingbird.files.locking import exclusive_output

    ds, _ = blocks
    out = tmp_path / "sharded_bank"
    with exclusive_output(out):
        code, _, err = run(["build-memory", "--dataset", "folder", "--data-root", ds, "--split", "all",
                            "--backbone", "dino_vits16", "--input-size", "64", "--out", out, *COMMON], capsys)
    assert code == 2 and f"{tmp_path / 'sharded_bank.lock'}" in one_line(err)
    assert not out.exists()
    assert run(["build-memory", "--dataset", "folder", "--data-root", ds, "--split", "all", "--backbone",
                "dino_vits16", "--input-size", "64", "--out", out, *COMMON], capsys)[0] == 0  # released
