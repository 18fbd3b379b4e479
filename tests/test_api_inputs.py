"""In-memory inputs to the Python API get the checks and messages a file gets, named as the caller wrote
them (``images[1]``, ``masks[0]``, ``backbone=``); misspelt keywords are refused naming the close match;
library calls print nothing unless asked; palettes follow known class names or a given ``palette=``."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from hummingbird import Segmenter
from hummingbird.cli.main import main
from hummingbird.datasets.classes import ADE20K_CLASSES, VOC_CLASSES
from hummingbird.datasets.palettes import ade20k_palette, voc_palette
from hummingbird.datasets.synthetic import block_scene
from hummingbird.errors import ConfigError, HummingbirdError

TINY = {"backbone": "dino_vits16", "weights": "random", "input_size": 64}


def _examples(n: int = 3, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    pairs = [block_scene(rng, 64, 16, 3) for _ in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


@pytest.fixture(scope="module")
def examples():
    return _examples()


@pytest.fixture(scope="module")
def reference(examples):
    images, masks = examples
    return Segmenter.from_examples(images, masks, augment=False, **TINY).bank


def _bank(images, masks, **keywords):
    return Segmenter.from_examples(images, masks, augment=False, **{**TINY, **keywords}).bank


def test_a_mask_of_another_size_is_named_like_a_files(examples, tmp_path):
    images, masks = examples
    wrong = [masks[0], masks[1][:60], masks[2]]
    for given in ([Image.fromarray(i) for i in images], images, [torch.from_numpy(i) for i in images]):
        with pytest.raises(ConfigError, match=r"^masks\[1\]: mask is 64x60 but images\[1\] is 64x64$"):
            Segmenter.from_examples(given, wrong, **TINY)
    # the same mistake with files: the same words, naming the file
    for i, (image, mask) in enumerate(zip(images, wrong)):
        Image.fromarray(image).save(tmp_path / f"i{i}.png")
        Image.fromarray(mask.astype(np.uint8)).save(tmp_path / f"m{i}.png")
    with pytest.raises(ConfigError, match=r"masks\[1\]: mask is 64x60 but images\[1\] is 64x64"):
        Segmenter.from_examples([tmp_path / f"i{i}.png" for i in range(3)], [tmp_path / f"m{i}.png" for i in range(3)],
                                **TINY)


def test_every_layout_and_type_of_an_image_gives_the_same_bank(examples, reference, tmp_path):
    images, masks = examples
    paths = []
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    layouts = {
        "paths": paths,
        "PIL": [Image.fromarray(i) for i in images],
        "uint8 CHW array": [np.moveaxis(i, -1, 0) for i in images],
        "float HWC array in [0, 1]": [i / 255.0 for i in images],
        "float CHW tensor in [0, 1]": [torch.from_numpy(i).permute(2, 0, 1).float() / 255 for i in images],
        "float HWC tensor in [0, 255]": [torch.from_numpy(i).float() for i in images],
        "uint16 array (as a 16-bit file)": [i.astype(np.uint16) * 257 for i in images],
        "RGBA array (alpha dropped, as for files)": [np.dstack([i, np.full(i.shape[:2], 9, np.uint8)]) for i in images],
        "one (N, H, W, 3) batch": np.stack(images),
    }
    for name, given in layouts.items():
        bank = _bank(given, masks)
        assert torch.equal(bank.features, reference.features), name
        assert torch.equal(bank.labels, reference.labels), name


def test_masks_are_checked_like_mask_files(examples, reference):
    images, masks = examples
    assert torch.equal(_bank(images, [m.astype(np.float32) for m in masks]).labels, reference.labels)  # whole numbers
    assert torch.equal(_bank(images, [torch.from_numpy(m) for m in masks]).labels, reference.labels)
    assert torch.equal(_bank(images, np.stack(masks)).labels, reference.labels)  # an (N, H, W) batch
    half = masks[0].astype(np.float64)
    half[3, 4] = 0.5
    cases = {
        r"masks\[0\]: float mask holds values that are not class indices \(e\.g\. 0\.5\)": [half, *masks[1:]],
        r"masks\[2\]: mask is a 3-channel colour image": [*masks[:2], np.dstack([masks[2]] * 3)],
        r"masks\[1\]: mask values \[7\] are outside the 3 classes \[0, 2\] and not the ignore index 255":
            [masks[0], np.full((64, 64), 7), masks[2]],
        r"masks\[0\]: a <U1 mask; expected integer class indices": [np.full((64, 64), "a"), *masks[1:]],
    }
    for message, given in cases.items():
        with pytest.raises(ConfigError, match=message):
            Segmenter.from_examples(images, given, class_names=["a", "b", "c"], **TINY)


def test_images_are_checked_like_image_files(examples):
    images, masks = examples
    cases = {
        r"images\[1\] \(float64 array\): float image with values in \[-1\.5, 2\], neither \[0, 1\] nor \[0, 255\]; "
        r"give the image before normalisation": [images[0], np.linspace(-1.5, 2, 64 * 64 * 3).reshape(64, 64, 3),
                                                 images[2]],
        r"images\[0\] \(float32 array\): float image holds NaN": [np.full((64, 64, 3), np.nan, np.float32), *images[1:]],
        r"images\[2\]: an array of shape \(64, 64, 5\) is not an image": [*images[:2], np.zeros((64, 64, 5), np.uint8)],
        r"images\[0\]: a bool array is not an image": [np.zeros((64, 64, 3), bool), *images[1:]],
        r"images\[1\]: expected a PIL image, an image array or tensor": [images[0], 3, images[2]],
    }
    for message, given in cases.items():
        with pytest.raises(ConfigError, match=message):
            Segmenter.from_examples(given, masks, **TINY)
    with pytest.raises(ConfigError, match=r"images\[0\]: image is 8x8, smaller than one 16-px patch"):
        Segmenter.from_examples([images[0][:8, :8]], [masks[0][:8, :8]], **TINY)
    with pytest.raises(ConfigError, match=r"^2 images but 3 masks; give one mask per image$"):
        Segmenter.from_examples(images[:2], masks, **TINY)


def test_a_single_image_and_mask_without_a_list_are_one_example(examples, tmp_path):
    images, masks = examples
    one = _bank([images[0]], [masks[0]])
    for image, mask in ((images[0], masks[0]), (Image.fromarray(images[0]), Image.fromarray(masks[0].astype(np.uint8))),
                        (torch.from_numpy(images[0]).permute(2, 0, 1), torch.from_numpy(masks[0]))):
        bank = _bank(image, mask)
        assert bank.metadata["num_images"] == 1 and torch.equal(bank.features, one.features)
    segmenter = Segmenter.from_examples(images[0], masks[0], **TINY)
    segmenter.add(images[1], masks[1])
    assert segmenter.bank.metadata["num_images"] == 2


def test_misspelt_keywords_are_refused_naming_the_close_match(examples):
    images, masks = examples
    calls = {
        "backbon=; did you mean backbone=?": lambda: Segmenter.from_examples(images, masks, backbon="dino_vits16",
                                                                          weights="random"),
        "memory_sise=; did you mean memory_size=?": lambda: Segmenter.from_examples(images, masks, memory_sise=10,
                                                                                 **TINY),
        "tempreature=; did you mean temperature=?": lambda: Segmenter.load("nowhere.safetensors", tempreature=0.1),
        "num_worker=; did you mean num_workers=?": lambda: Segmenter.from_dataset("folder", ".", "train", num_worker=0),
    }
    for message, call in calls.items():
        with pytest.raises(ConfigError, match=rf"^Segmenter\.\w+: unknown keyword argument {re.escape(message)}$"):
            call()


def test_messages_name_python_arguments_from_python_and_flags_from_the_command_line(examples, tmp_path, capsys):
    images, masks = examples
    mine = tmp_path / "mine.pth"
    mine.write_bytes(b"weights of an unknown name")
    with pytest.raises(HummingbirdError, match=r"^backbone= is required \(it could not be told from the weights "
                                               r"file name mine\.pth"):
        Segmenter.from_examples(images, masks, weights=str(mine))
    with pytest.raises(HummingbirdError, match=r"^memory_size=1 is smaller than one patch per image"):
        Segmenter.from_examples(images, masks, memory_size=1, **TINY)
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (image, mask) in enumerate(zip(images, masks)):
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / f"{i}.png")
    assert main(["build-memory", "--dataset", "folder", "--data-root", str(root), "--split", "all", "--weights",
                 "random", "--memory-size", "1", "--backbone", "dino_vits16", "--input-size", "64", "--out",
                 str(tmp_path / "b.safetensors"), "--num-workers", "0", "--no-progress"]) == 2
    assert "error: --memory-size 1 is smaller than one patch per image" in capsys.readouterr().err
    with pytest.raises(HummingbirdError, match=r"^memory_size=1 is smaller"):  # Python again after the CLI ran
        Segmenter.from_examples(images, masks, memory_size=1, **TINY)


def test_library_calls_print_nothing_unless_progress_is_asked(examples, capsys):
    images, masks = examples
    segmenter = Segmenter.from_examples(images, masks, **TINY)
    segmenter.add(images[:1], masks[:1])
    segmenter.evaluate(images, masks)
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")
    Segmenter.from_examples(images, masks, progress=True, **TINY)
    assert "memory: 3 images of in-memory examples" in capsys.readouterr().err


def test_the_palette_follows_known_class_names_or_the_one_given(examples, tmp_path):
    images, masks = examples
    voc = Segmenter.from_examples(images, masks, class_names=VOC_CLASSES, **TINY)
    assert np.array_equal(voc.palette[:21], voc_palette(21))
    subset = ["background", "cat", "dog"]  # VOC names in another order: each keeps its VOC colour
    named = Segmenter.from_examples(images, masks, class_names=subset, **TINY)
    assert np.array_equal(named.palette[:3], voc_palette(21)[[0, 8, 12]])
    ade = Segmenter.from_examples(images, masks, class_names=["wall", "sky", "tree"], **TINY)
    assert np.array_equal(ade.palette[:3], ade20k_palette()[[0, 2, 4]])
    mine = [[255, 0, 0], [0, 255, 0], "#0000ff"]
    custom = Segmenter.from_examples(images, masks, class_names=["a", "b", "c"], palette=mine, **TINY)
    assert custom.palette[:3].tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    path = custom.save(tmp_path / "bank.safetensors")
    assert main(["segment", "--bank", str(path), "--images", str(tmp_path / "bank.safetensors.images"),
                 "--out-dir", str(tmp_path / "out"), "--num-workers", "0", "--no-progress"]) == 0
    drawn = Image.open(tmp_path / "out" / "example_00000.png")
    assert drawn.getpalette()[:9] == [255, 0, 0, 0, 255, 0, 0, 0, 255]  # the command line draws with it too
    with pytest.raises(ConfigError, match=r"palette=: expected \(3, 3\) RGB values"):
        Segmenter.from_examples(images, masks, palette=[[1, 2, 3]], **TINY)


def test_results_say_they_are_fractions_and_the_table_says_percent(examples, tmp_path, capsys):
    images, masks = examples
    segmenter = Segmenter.from_examples(images, masks, **TINY)
    result = segmenter.evaluate(images, masks)
    assert result["units"].startswith("fraction") and 0 <= result["mIoU"] <= 1
    path = segmenter.save(tmp_path / "bank.safetensors")
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (image, mask) in enumerate(zip(images, masks)):
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / f"{i}.png")
    out = tmp_path / "r.json"
    capsys.readouterr()
    assert main(["evaluate", "--dataset", "folder", "--data-root", str(root), "--split", "all", "--bank", str(path),
                 "--out", str(out), "--num-workers", "0", "--no-progress"]) == 0
    table = capsys.readouterr().out
    written = json.loads(out.read_text())
    assert written["units"] == result["units"] and written["mIoU"] == pytest.approx(result["mIoU"])
    assert "IoU (%)" in table.splitlines()[0] and "fractions of 1" in table
    line = next(l for l in table.splitlines() if l.startswith("mIoU (plain"))
    assert f" {100 * written['mIoU']:.2f} %" in line
