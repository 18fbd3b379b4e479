"""End-to-end evaluation on real VOC images with real weights (skipped when they are absent)."""

import math

import pytest

from hummingbird.backbones import load_backbone
from hummingbird.datasets import load_dataset
from hummingbird.features import TokenFeatures
from hummingbird.pipeline import LoaderOptions, build_memory_bank, evaluate, make_decoder
from hummingbird.results import format_scores
from hummingbird.transforms import EvalResize, MemoryAugment
from realdata import real_voc, real_weights

pytestmark = pytest.mark.realdata
TRAIN_IMAGES, VAL_IMAGES = 40, 20


def test_real_voc_evaluation_on_cpu():
    name, weights = real_weights()
    root = real_voc()
    features = TokenFeatures(load_backbone(name, weights=weights))
    size = 448  # a multiple of 8, 14 and 16
    train = load_dataset("voc", root, "train", MemoryAugment(size)).first(TRAIN_IMAGES)
    val = load_dataset("voc", root, "val", EvalResize(size)).first(VAL_IMAGES)
    opts = LoaderOptions(batch_size=4, num_workers=2)
    bank = build_memory_bank(features, train, size, memory_size=TRAIN_IMAGES * 200, opts=opts)
    result = evaluate(features, make_decoder(bank), val, opts)
    print(f"\n{name} ({weights.name}), {len(train)} train / {len(val)} val VOC images at {size}px")
    print(format_scores(result))
    assert math.isfinite(result["mIoU"]) and 0 <= result["mIoU"] <= 1
    # a working pipeline with real self-supervised weights is far above chance (~1/21 per class)
    assert result["pixel_accuracy"] > 0.6 and result["mIoU"] > 0.15


def test_real_voc_fungi_against_tokens(tmp_path):
    """Same memory, seeds and images: plain tokens vs FUNGI (fast and dense), printed as an mIoU table."""
    from fungi_dense.assemble import fungi_features
    from fungi_dense.features import FungiConfig

    name, weights = real_weights()
    root = real_voc()
    encoder = load_backbone(name, weights=weights)
    size = 448
    train = load_dataset("voc", root, "train", MemoryAugment(size)).first(TRAIN_IMAGES)
    plain_train = load_dataset("voc", root, "train", EvalResize(size)).first(TRAIN_IMAGES)
    val = load_dataset("voc", root, "val", EvalResize(size)).first(VAL_IMAGES)
    opts = LoaderOptions(batch_size=4, num_workers=2)
    sources = {"tokens": TokenFeatures(encoder)}
    for projection in ("fast", "dense"):
        sources[f"fungi-{projection}"] = fungi_features(encoder, FungiConfig(projection=projection),
                                                        tmp_path / "support.safetensors", size, training=plain_train,
                                                        opts=opts)
    table = {}
    for kind, features in sources.items():
        bank = build_memory_bank(features, train, size, memory_size=TRAIN_IMAGES * 200, seed=0, opts=opts)
        table[kind] = evaluate(features, make_decoder(bank), val, opts)["mIoU"]
    print(f"\n{name}: {len(train)} train / {len(val)} val VOC images, memory {TRAIN_IMAGES * 200}, {size}px")
    print("| features | mIoU |\n|---|---|")
    for kind, miou in table.items():
        print(f"| {kind} | {100 * miou:.2f} |")
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in table.values())
