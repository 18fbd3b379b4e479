"""Protocol presets: the open-hummingbird-eval settings, each checked against a hand-computed case."""

import numpy as np
import pytest
import torch
from conftest import write_ade
from PIL import Image

from hummingbird.datasets.base import IGNORE_INDEX
from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.registry import load_dataset
from hummingbird.datasets.transforms import EvalResize, OpenHbirdAugment
from hummingbird.errors import BankError, ConfigError
from hummingbird.evaluation.protocols import PROTOCOLS, get_protocol
from hummingbird.memory.bank import MemoryBank
from hummingbird.memory.sampling import class_frequency_selection
from hummingbird.models.backbones import load_backbone
from hummingbird.models.features import TokenFeatures
from hummingbird.pipeline import build_memory_bank

OPEN_HBIRD, DEFAULT = PROTOCOLS["open-hbird"], PROTOCOLS["default"]
QUIET = LoaderOptions(batch_size=2, progress=False)


def test_open_hbird_counts_void_as_background_and_keeps_all_void_patches():
    mask = torch.tensor([[[1, 1, 255, 255],
                          [1, 255, 255, 255]]])
    ours = DEFAULT.patch_labels(mask, 2, 3)
    peer = OPEN_HBIRD.patch_labels(mask, 2, 3)
    torch.testing.assert_close(ours[0, 0], torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(peer[0, 0], torch.tensor([[0.25, 0.75, 0.0], [1.0, 0.0, 0.0]]))


def test_class_frequency_selection_keeps_lowest_frequency_times_noise():
    # 4 patches: class 0 is in patches 0-2, class 1 in patches 2-3 → frequencies 3 and 2;
    # scores: 3, 3, 3 + 2, 2, each times a seeded uniform number; the lowest scores are kept
    dists = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]])
    noise = torch.rand(4, generator=torch.Generator().manual_seed(5))
    expected = torch.tensor([3.0, 3.0, 5.0, 2.0]) * noise
    chosen = class_frequency_selection(dists, per_image=2, seeds=[5])
    assert sorted(chosen[0].tolist()) == sorted(torch.argsort(expected)[:2].tolist())
    # patches without any label are never kept; slots beyond the labelled ones are -1
    dists[0, 1] = 0
    chosen = class_frequency_selection(dists, per_image=4, seeds=[5])
    assert sorted(chosen[0].tolist()) == [-1, 0, 2, 3]


def test_class_frequency_selection_prefers_rare_classes_on_average():
    dists = torch.zeros(1, 100, 2)
    dists[0, :90, 0] = 1  # a common class in 90 patches, a rare one in 10
    dists[0, 90:, 1] = 1
    kept = torch.cat([class_frequency_selection(dists, 10, [s])[0] for s in range(50)])
    assert (kept >= 90).float().mean() > 0.3  # 10 % of patches, but far more of the picks


def test_open_hbird_augmentation_is_seeded_unflipped_and_aligned():
    rng = np.random.default_rng(0)
    mask = np.kron(rng.integers(0, 4, (6, 6)), np.ones((16, 16), np.int64))
    image = Image.fromarray(np.repeat((mask * 60).astype(np.uint8)[..., None], 3, axis=2))
    aug = OpenHbirdAugment(48, jitter_p=0.0)
    areas = []
    for seed in range(20):
        img_t, mask_t, view = aug(image, mask, seed)
        top, left, height, width, flipped = view.tolist()
        assert flipped == 0 and 0 <= top and top + height <= 96 and 0 <= left and left + width <= 96
        decoded = torch.round(img_t[0] * 255 / 60).long()
        interior = torch.nn.functional.max_pool2d((decoded != mask_t)[None].float(), 3, 1, 1)[0] == 0
        assert interior.float().mean() > 0.5
        areas.append(height * width / 96**2)
    # area scale (0.5, 2.0): a draw larger than the image is retried, so crops cover 50-100 % of it
    assert min(areas) >= 0.5 * 0.95 and max(areas) <= 1.0 and max(areas) > 0.8
    first, again = aug(image, mask, 3), aug(image, mask, 3)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_eval_resize_uses_pillow_bilinear_for_images():
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    out, mask, view = EvalResize(28)(image, np.zeros((50, 70), np.int64))
    expected = np.asarray(image.resize((28, 28), Image.Resampling.BILINEAR), np.float32) / 255
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), expected)
    assert view.tolist() == [0, 0, 50, 70, 0]


def test_ade20k_other_conventions(tmp_path):
    root = write_ade(tmp_path)  # raw columns: 0 (other), 1 (wall), 150 (flag), 13 (person)
    shifted = load_dataset("ade20k", root, "val")[0]["mask"]
    memory = load_dataset("ade20k", root, "val", **OPEN_HBIRD.dataset_options("ade20k", "memory"))
    evaluation = load_dataset("ade20k", root, "val", **OPEN_HBIRD.dataset_options("ade20k", "evaluation"))
    assert memory.num_classes == evaluation.num_classes == 151 and memory.class_names[0] == "other"
    assert memory.class_names[13] == "person" and memory.class_names == evaluation.class_names
    raw_memory, raw_eval = memory[0]["mask"], evaluation[0]["mask"]
    assert [int(raw_memory[0, c]) for c in (0, 8, 16, 24)] == [0, 1, 150, 13]
    assert [int(raw_eval[0, c]) for c in (0, 8, 16, 24)] == [IGNORE_INDEX, 1, 150, 13]
    assert [int(shifted[0, c]) for c in (0, 8, 16, 24)] == [IGNORE_INDEX, 0, 149, 12]
    assert DEFAULT.dataset_options("ade20k", "memory") == {"other": "ignore"}
    assert OPEN_HBIRD.dataset_options("voc", "memory") == {}


def test_preset_names_are_checked():
    assert get_protocol("open-hbird") is OPEN_HBIRD
    with pytest.raises(ConfigError, match="protocol_preset='openhbird': choose from default, open-hbird"):
        get_protocol("openhbird")


def test_bank_records_preset_and_encoder_settings(folder_dataset, tmp_path):
    encoder = load_backbone("dino_vits16", weights="random", depth=1,
                            normalisation=OPEN_HBIRD.normalisation)
    train = load_dataset("folder", folder_dataset, "train", EvalResize(32)).first(2)
    bank = build_memory_bank(TokenFeatures(encoder), train, 32, protocol=OPEN_HBIRD, opts=QUIET)
    assert bank.metadata["protocol_preset"] == "open-hbird" and bank.metadata["pos_embed"] == "official"
    assert bank.metadata["normalisation"]["std"] == [0.229, 0.224, 0.255]
    path = bank.save(tmp_path / "bank.safetensors")
    loaded = MemoryBank.load(path)
    loaded.check_compatible(dict(TokenFeatures(encoder).metadata(), input_size=32, protocol_preset="open-hbird"))
    plain = load_backbone("dino_vits16", weights="random", depth=1)
    with pytest.raises(BankError, match="normalisation: bank has .*protocol_preset: bank has 'open-hbird', "
                                        "pipeline has 'default'"):
        loaded.check_compatible(dict(TokenFeatures(plain).metadata(), input_size=32, protocol_preset="default"))


def test_version_1_banks_mean_what_they_meant(folder_dataset, tmp_path):
    encoder = load_backbone("dino_vits16", weights="random", depth=1, pos_embed="timm")
    train = load_dataset("folder", folder_dataset, "train", EvalResize(32)).first(2)
    bank = build_memory_bank(TokenFeatures(encoder), train, 32, opts=QUIET)
    for key in ("pos_embed", "normalisation", "protocol_preset"):  # what a version-1 bank lacked
        bank.metadata.pop(key)
    from hummingbird.memory import bank as memory

    version, memory.FORMAT_VERSION = memory.FORMAT_VERSION, 1
    try:
        path = bank.save(tmp_path / "v1.safetensors")
    finally:
        memory.FORMAT_VERSION = version
    loaded = MemoryBank.load(path)
    assert loaded.metadata["format_version"] == 1
    assert (loaded.metadata["pos_embed"], loaded.metadata["protocol_preset"]) == ("timm", "default")
    loaded.check_compatible(dict(TokenFeatures(encoder).metadata(), input_size=32, protocol_preset="default"))
    official = load_backbone("dino_vits16", weights="random", depth=1)
    with pytest.raises(BankError, match="pos_embed: bank has 'timm', pipeline has 'official'"):
        loaded.check_compatible(dict(TokenFeatures(official).metadata(), input_size=32))


def test_search_defaults_to_the_presets_exact_for_open_hbird_and_auto_otherwise(folder_dataset, tmp_path,
                                                                                monkeypatch):
    import json

    from hummingbird.cli.main import main
    from hummingbird.memory import search

    monkeypatch.setattr(search, "CPU_CLUSTERED_FROM", 1)  # auto clusters even this small memory
    common = ["--dataset", "folder", "--data-root", str(folder_dataset), "--weights", "random", "--backbone",
              "dino_vits16", "--input-size", "64", "--num-workers", "0", "--no-progress"]
    searched = {}
    for preset in PROTOCOLS:
        bank, out = tmp_path / f"{preset}.safetensors", tmp_path / f"{preset}.json"
        assert main(["build-memory", *common, "--split", "train", "--no-augment", "--protocol-preset", preset,
                     "--out", str(bank)]) == 0
        assert main(["evaluate", *common, "--bank", str(bank), "--k", "5", "--out", str(out)]) == 0
        config = json.loads(out.read_text())["config"]
        searched[preset] = (config["index"], config["search"])
    assert searched == {"default": ("auto", "clustered"), "open-hbird": ("Flat", "Flat")}
    # --index still overrides the preset's
    out = tmp_path / "override.json"
    assert main(["evaluate", *common, "--bank", str(tmp_path / "open-hbird.safetensors"), "--k", "5",
                 "--index", "exact", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["config"]["search"] == "exact"
