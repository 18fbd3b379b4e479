"""Non-square images keep their aspect ratio: patch grids, sliding windows stitched on the patch grid,
and label maps at the image's own size."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from hummingbird.cli.main import main
from hummingbird.memory.tiling import input_shape, patch_distributions, window_starts

COMMON = ["--weights", "random", "--num-workers", "0", "--no-progress"]
RED, BLUE = (220, 30, 30), (30, 30, 220)


def test_input_shape_keeps_the_aspect_ratio_on_the_patch_grid():
    assert input_shape(360, 640, 224, 16, "square") == (224, 224)
    assert input_shape(360, 640, 224, 16, "aspect") == (224, 400)  # 640 * 224/360 = 398.2 → 25 patches
    assert input_shape(4000, 6000, 504, 14, "aspect") == (504, 756)
    assert input_shape(6000, 4000, 504, 14, "slide") == (756, 504)


@pytest.mark.parametrize("length,window,stride", [(64, 64, 48), (400, 224, 144), (756, 504, 336), (100, 20, 12)])
def test_windows_cover_every_pixel_on_the_patch_grid(length, window, stride):
    starts = window_starts(length, window, stride, 4)
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s:s + window] = True
    assert covered.all() and starts[0] == 0 and starts[-1] == max(0, length - window)
    assert all(s % 4 == 0 for s in starts) and all(b - a < stride + 4 for a, b in zip(starts, starts[1:]))


class MeanColour:
    """A feature source whose 'feature' of a patch is its mean colour; with an identity decoder the
    stitched distributions must equal the mean colours of the whole resized image."""

    patch_size = 8

    def __init__(self):
        self.encoder = torch.nn.Linear(1, 1)
        self.calls = []

    def __call__(self, images, image_ids=None):
        self.calls.append(tuple(images.shape))
        b, c, h, w = images.shape
        return images.view(b, c, h // 8, 8, w // 8, 8).mean((3, 5)).permute(0, 2, 3, 1)


class Identity:
    @staticmethod
    def patch_distributions(features):
        return features


def test_sliding_windows_are_stitched_on_the_right_patches():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (40, 100, 3), dtype=np.uint8))
    features = MeanColour()
    aspect = patch_distributions(features, Identity(), image, 32, "aspect")
    slide = patch_distributions(MeanColour(), Identity(), image, 32, "slide")
    assert aspect.shape == slide.shape == (1, 4, 10, 3)  # 40x100 → 32x80 pixels → 4x10 patches
    torch.testing.assert_close(slide, aspect)
    assert features.calls == [(1, 3, 32, 80)]
    windows = MeanColour()
    patch_distributions(windows, Identity(), image, 32, "slide")
    assert windows.calls == [(3, 3, 32, 32)]  # columns 0, 24, 48 (stride 2/3 of 32, rounded to 24 = 3 patches)


@pytest.fixture
def halves_bank(tmp_path):
    """A bank of 128-px images whose left part is red (class 0) and right part blue (class 1)."""
    root = tmp_path / "halves"
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k, edge in enumerate((32, 48, 64, 80, 96)):
        image = np.empty((128, 128, 3), np.uint8)
        image[:, :edge], image[:, edge:] = RED, BLUE
        image = (image.astype(int) + rng.integers(-8, 8, image.shape)).clip(0, 255).astype(np.uint8)
        mask = np.zeros((128, 128), np.uint8)
        mask[:, edge:] = 1
        Image.fromarray(image).save(root / "images" / f"h{k}.png")
        Image.fromarray(mask).save(root / "masks" / f"h{k}.png")
    (root / "classes.txt").write_text("red\nblue\n")
    bank = tmp_path / "bank.safetensors"
    assert main(["build-memory", "--dataset", "folder", "--data-root", str(root), "--split", "all",
                 "--backbone", "dino_vits16", "--input-size", "128", "--no-augment", "--out", str(bank), *COMMON]) == 0
    return bank


@pytest.mark.parametrize("mode", ["aspect", "slide"])
def test_wide_image_keeps_its_shape_and_its_boundary(halves_bank, tmp_path, mode):
    edge = 200  # the true column of the red/blue boundary of a 640x360 photo
    photo = np.empty((360, 640, 3), np.uint8)
    photo[:, :edge], photo[:, edge:] = RED, BLUE
    Image.fromarray(photo).save(tmp_path / "wide.png")
    out = tmp_path / f"seg_{mode}"
    assert main(["segment", "--bank", str(halves_bank), "--images", str(tmp_path / "wide.png"), "--k", "3",
                 "--resize-mode", mode, "--out-dir", str(out), *COMMON]) == 0
    labels = np.array(Image.open(out / "wide.png"))
    assert labels.shape == (360, 640)
    # the patch grid is 8 x 14 (short side 128 px, long side 640*128/360 ≈ 224 px): one patch is 45.7 px
    patch = 640 / 14
    assert (labels[:, : int(edge - patch)] == 0).all() and (labels[:, int(edge + patch) + 1:] == 1).all()
    assert json.loads((out / "summary.json").read_text())["resize_mode"] == mode


def test_square_mode_squashes_the_patch_grid(halves_bank, tmp_path):
    from hummingbird.memory.bank import MemoryBank
    from hummingbird.models.backbones import load_backbone
    from hummingbird.models.features import TokenFeatures
    from hummingbird.pipeline import make_decoder

    bank = MemoryBank.load(halves_bank)
    features = TokenFeatures(load_backbone("dino_vits16", weights="random"))
    photo = Image.new("RGB", (640, 360), RED)
    decoder = make_decoder(bank, k=3)
    assert patch_distributions(features, decoder, photo, 128, "square").shape[1:3] == (8, 8)
    assert patch_distributions(features, decoder, photo, 128, "aspect").shape[1:3] == (8, 14)


def test_neighbours_of_a_wide_image_on_its_own_patch_grid(halves_bank, tmp_path):
    photo = np.empty((128, 256, 3), np.uint8)
    photo[:] = BLUE
    photo[32:64, 160:192] = RED  # patches (2, 10) .. (3, 11) of the 8 x 16 grid
    Image.fromarray(photo).save(tmp_path / "wide.png")
    out = tmp_path / "nb.png"
    assert main(["neighbours", "--bank", str(halves_bank), "--image", str(tmp_path / "wide.png"), "--point",
                 "170,40", "--k", "2", "--out", str(out), *COMMON]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["patch"] == [2, 10] and record["query_box"] == [160, 32, 176, 48]
    assert [n["label_name"] for n in record["neighbours"]] == ["red", "red"]
    assert main(["neighbours", "--bank", str(halves_bank), "--image", str(tmp_path / "wide.png"), "--point",
                 "170,40", "--k", "2", "--resize-mode", "square", "--out", str(out), *COMMON]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["patch"] == [2, 5] and record["query_box"] == [160, 32, 192, 48]  # squashed: 32x16 px
