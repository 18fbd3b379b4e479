"""The ``open-hbird`` preset's memory augmentation and bounded-memory selection against open-hummingbird-eval
2.0.0: its transform chain rebuilt from torchvision as the peer builds it (seed for seed), and the
distributions of crop boxes, jitter draws and kept patches against the peer's formulas re-derived here
with numpy, with enough draws that every comparison resolves a 2 % difference (asserted)."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as F1
from torchvision.transforms import v2

from hummingbird.datasets.transforms import JITTER_OPS, OpenHbirdAugment, OpenHbirdDraw
from hummingbird.evaluation.protocols import PROTOCOLS

OPEN_HBIRD = PROTOCOLS["open-hbird"]
MEAN, STD = OPEN_HBIRD.normalisation
KS_ALPHA_1E3 = 1.949  # two-sample Kolmogorov-Smirnov critical coefficient at alpha = 0.001
DRAWS = 25_000  # our draws (seeds 0..DRAWS-1): the production path, one seeded draw per sample
H, W = 375, 500  # a typical VOC image


def _peer_chain(image: Image.Image, mask: Image.Image, size: int):
    """open-hummingbird-eval 2.0.0's training transform (hbird/utils/transforms.py and
    image_transformations.py), rebuilt from torchvision: image-only jitter + ToTensor + Normalize, then the
    paired random resized crop (mask as ToTensor floats, nearest), labels back as ``(y * 255).long()``."""
    jitter = [T.RandomApply([T.ColorJitter(**{op: 0.1})], p=0.5) for op in JITTER_OPS]
    image_t = T.Compose([*jitter, T.ToTensor(), T.Normalize(MEAN, STD)])(image)
    target = T.ToTensor()(mask)
    i, j, h, w = T.RandomResizedCrop.get_params(image_t, scale=(0.5, 2.0), ratio=(3 / 4, 4 / 3))
    image_t = F1.resized_crop(image_t, i, j, h, w, [size, size], T.InterpolationMode.BILINEAR, antialias=True)
    target = F1.resized_crop(target, i, j, h, w, [size, size], T.InterpolationMode.NEAREST)
    return image_t, (target[0] * 255).long()


def _test_image(height: int, width: int, seed: int = 0) -> tuple[Image.Image, np.ndarray]:
    """Smooth colourful image (so hue, saturation and contrast all matter) and a blocky mask with void."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.integers(0, 256, (1, 3, 6, 8)).astype(np.float32))
    pixels = torch.nn.functional.interpolate(coarse, (height, width), mode="bilinear", align_corners=False)
    pixels = (pixels[0].permute(1, 2, 0) + torch.from_numpy(rng.normal(0, 12, (height, width, 3)))).clamp(0, 255)
    mask = np.kron(rng.integers(0, 5, (height // 8 + 1, width // 8 + 1)), np.ones((8, 8), np.int64))[:height, :width]
    mask[rng.random(mask.shape) < 0.05] = 255
    return Image.fromarray(pixels.numpy().astype(np.uint8)), mask


def _tensor_kernel_jitter(aug: OpenHbirdAugment, image: Image.Image, mask: np.ndarray, draw: OpenHbirdDraw):
    """``draw`` with the jitter done by torchvision's uint8-tensor kernels (the preset before issue 18)."""
    pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
    for op, factor in zip(JITTER_OPS, draw.jitter):
        if factor is not None:
            pixels = getattr(v2.functional, f"adjust_{op}")(pixels, factor)
    return aug.apply(Image.fromarray(pixels.permute(1, 2, 0).numpy()), mask, OpenHbirdDraw((None,) * 4, draw.box))


def test_augmentation_is_the_peers_transform_chain_seed_for_seed():
    image, mask = _test_image(61, 83)
    mask_pil = Image.fromarray(mask.astype(np.uint8))
    aug = OpenHbirdAugment(28)
    mean, std = torch.tensor(MEAN)[:, None, None], torch.tensor(STD)[:, None, None]
    applied, tensor_kernels_differ = np.zeros(4, int), 0
    for seed in range(24):
        torch.manual_seed(seed)
        peer_image, peer_mask = _peer_chain(image, mask_pil, 28)
        ours, ours_mask, view = aug(image, mask, seed)
        draw = aug.draw(image.height, image.width, seed)
        applied += [f is not None for f in draw.jitter]
        # the peer normalises before the crop, the encoder after it: equal up to float rounding
        torch.testing.assert_close((ours - mean) / std, peer_image, atol=2e-5, rtol=0)
        assert torch.equal(ours_mask, peer_mask)
        assert view.tolist() == [*draw.box, 0]  # never flipped
        old = _tensor_kernel_jitter(aug, image, mask, draw)[0]
        tensor_kernels_differ += not torch.allclose((old - mean) / std, peer_image, atol=2e-5, rtol=0)
    assert applied.min() >= 3 and applied.max() <= 21  # every operation both applied and skipped
    assert tensor_kernels_differ >= 12  # the same comparison catches the tensor kernels' rounding


def test_colour_operations_run_in_the_peers_fixed_order():
    image, mask = _test_image(40, 40, seed=3)
    aug = OpenHbirdAugment(40)
    draw = OpenHbirdDraw((1.08, 0.91, 1.07, 0.06), (0, 0, 40, 40))
    ours = aug.apply(image, mask, draw)[0]
    in_order, reversed_order = image, image
    for op, factor in zip(JITTER_OPS, draw.jitter):
        in_order = getattr(F1, f"adjust_{op}")(in_order, factor)
    for op, factor in reversed(list(zip(JITTER_OPS, draw.jitter))):
        reversed_order = getattr(F1, f"adjust_{op}")(reversed_order, factor)
    as_float = lambda im: torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255  # noqa: E731
    torch.testing.assert_close(ours, as_float(in_order), atol=1e-6, rtol=0)
    assert not torch.allclose(ours, as_float(reversed_order), atol=1e-6, rtol=0)


def _ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    grid = np.union1d(a, b)
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def _ks_critical(n: int, m: int) -> float:
    return KS_ALPHA_1E3 * np.sqrt((n + m) / (n * m))


def _peer_crop_boxes(rng: np.random.Generator, n: int, scale=(0.5, 2.0), ratio=(3 / 4, 4 / 3)) -> np.ndarray:
    """``(n, 4)`` boxes (top, left, height, width) of the peer's crop (torchvision ``RandomResizedCrop``),
    re-derived: ten tries of area × U(scale) and exp(U(log ratio)), kept when they fit, placed uniformly;
    else a central crop (the whole image when its aspect ratio is within ``ratio``)."""
    boxes = np.zeros((n, 4), np.int64)
    done = np.zeros(n, bool)
    for _ in range(10):
        area = H * W * rng.uniform(*scale, n)
        aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), n))
        w, h = np.rint(np.sqrt(area * aspect)).astype(int), np.rint(np.sqrt(area / aspect)).astype(int)
        fits = ~done & (w > 0) & (w <= W) & (h > 0) & (h <= H)
        top = np.floor(rng.random(n) * (H - h + 1)).astype(int)
        left = np.floor(rng.random(n) * (W - w + 1)).astype(int)
        boxes[fits] = np.stack([top, left, h, w], 1)[fits]
        done |= fits
    assert ratio[0] <= W / H <= ratio[1]
    boxes[~done] = (0, 0, H, W)
    return boxes


def _box_statistics(boxes: np.ndarray) -> dict:
    top, left, h, w = boxes.T
    return {"area": h * w / (H * W), "log aspect": np.log(w / h), "top": top / H, "left": left / W,
            "whole image": (h == H) & (w == W)}


def _compare_boxes(ours: dict, peer: dict) -> list[str]:
    """Names of the statistics whose distributions differ (KS at alpha = 0.001; rate within 4 sigma)."""
    n, m = len(ours["area"]), len(peer["area"])
    failed = [name for name in ("area", "log aspect", "top", "left")
              if _ks_distance(ours[name], peer[name]) > _ks_critical(n, m)]
    a, b = ours["whole image"].mean(), peer["whole image"].mean()
    if abs(a - b) > 4 * np.sqrt(b * (1 - b) * (1 / n + 1 / m)):
        failed.append("whole image")
    return failed


@pytest.fixture(scope="module")
def draws() -> list[OpenHbirdDraw]:
    aug = OpenHbirdAugment(224)
    return [aug.draw(H, W, seed) for seed in range(DRAWS)]


def test_crop_boxes_follow_the_peers_distribution(draws):
    ours = _box_statistics(np.array([d.box for d in draws]))
    rng = np.random.default_rng(0)
    peer = _box_statistics(_peer_crop_boxes(rng, 8 * DRAWS))
    assert _ks_critical(DRAWS, 8 * DRAWS) < 0.015  # resolves a 2 % gap between the CDFs
    assert _compare_boxes(ours, peer) == []
    # the comparison catches 2 % changes of the peer's crop parameters
    assert "area" in _compare_boxes(ours, _box_statistics(_peer_crop_boxes(rng, 8 * DRAWS, scale=(0.51, 2.0))))
    assert _compare_boxes(ours, _box_statistics(_peer_crop_boxes(rng, 8 * DRAWS, ratio=(3 / 4, 4 / 3 * 1.02))))
    # a try fits with chance ~0.17, so ten misses in a row leave ~15 % of a 4:3 image's crops the whole image
    assert 0.12 < ours["whole image"].mean() < 0.18


def test_jitter_draws_follow_the_peers_distribution(draws):
    factors = np.array([[np.nan if f is None else f for f in d.jitter] for d in draws])
    applied = ~np.isnan(factors)
    tolerance = 0.01  # > 3 sigma at DRAWS, half a 2-point change of a probability
    assert 4 * np.sqrt(0.25 / DRAWS) < 0.02
    np.testing.assert_allclose(applied.mean(0), 0.5, atol=tolerance)  # each operation with p = 0.5
    # independently of each other: the number applied is Binomial(4, 1/2)
    counts = np.bincount(applied.sum(1), minlength=5) / DRAWS
    np.testing.assert_allclose(counts, np.array([1, 4, 6, 4, 1]) / 16, atol=tolerance)
    for column, (low, high) in enumerate([(0.9, 1.1)] * 3 + [(-0.1, 0.1)]):
        sample = np.sort(factors[applied[:, column], column])
        assert low <= sample[0] and sample[-1] <= high
        uniform_cdf = (sample - low) / (high - low)
        gap = max(np.abs(np.arange(1, len(sample) + 1) / len(sample) - uniform_cdf).max(),
                  np.abs(np.arange(len(sample)) / len(sample) - uniform_cdf).max())
        assert KS_ALPHA_1E3 / np.sqrt(len(sample)) < 0.02  # resolves a 2 % gap from the uniform CDF
        assert gap < KS_ALPHA_1E3 / np.sqrt(len(sample)), JITTER_OPS[column]


# a 4x4-patch image (patch 2 px): classes 1-3 in blocks, void pixels counted as background (class 0)
SELECTION_MASK = torch.tensor([
    [0, 0, 1, 1, 1, 1, 2, 2],
    [0, 0, 1, 1, 1, 1, 2, 255],
    [0, 0, 0, 0, 1, 1, 2, 2],
    [0, 0, 0, 0, 1, 1, 2, 2],
    [3, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 255, 255],
    [0, 0, 0, 0, 0, 0, 255, 255],
    [0, 0, 0, 0, 0, 0, 255, 255],
])


def _peer_patch_scores(mask: np.ndarray, patch: int) -> np.ndarray:
    """The peer's patch score: void → background; per class, the number of patches holding it; a patch's
    score is the sum of that number over the classes it holds."""
    mask = np.where(mask == 255, 0, mask)
    blocks = [set(np.unique(mask[r:r + patch, c:c + patch]).tolist())
              for r in range(0, mask.shape[0], patch) for c in range(0, mask.shape[1], patch)]
    frequency = {c: sum(c in b for b in blocks) for c in set().union(*blocks)}
    return np.array([sum(frequency[c] for c in b) for b in blocks], float)


def _our_selection_rates(select, per_image: int, n: int) -> np.ndarray:
    dists = OPEN_HBIRD.patch_labels(SELECTION_MASK[None], 2, 4).view(1, 16, 4).expand(n, -1, -1)
    chosen = select(dists, per_image, list(range(n)))
    assert (chosen >= 0).all()
    return np.bincount(chosen.flatten().numpy(), minlength=16) / n


def test_bounded_memory_keeps_one_patch_with_the_peers_probabilities():
    scores = _peer_patch_scores(SELECTION_MASK.numpy(), 2)
    assert len(set(scores)) >= 4  # patches with different chances
    # P(patch i has the lowest score × U(0, 1)) = ∫_0^{s_i} 1/s_i · Π_{j≠i} (1 - t/s_j)⁺ dt
    expected = []
    for i, s in enumerate(scores):
        t = np.linspace(0, s, 200_001)
        others = np.prod(np.clip(1 - t[:, None] / np.delete(scores, i)[None], 0, None), axis=1)
        expected.append(np.trapezoid(others, t) / s)
    expected = np.array(expected)
    assert abs(expected.sum() - 1) < 1e-6
    n = 40_000
    sigma = np.sqrt(expected * (1 - expected) / n)
    assert 4 * sigma.max() < 0.01
    np.testing.assert_array_less(np.abs(_our_selection_rates(OPEN_HBIRD.select, 1, n) - expected), 4 * sigma + 1e-9)


def test_bounded_memory_keeps_k_patches_with_the_peers_frequencies():
    scores = _peer_patch_scores(SELECTION_MASK.numpy(), 2)
    m, n, k = 200_000, 40_000, 4
    noisy = scores[None] * np.random.default_rng(1).random((m, 16), dtype=np.float32)
    kept = np.argpartition(noisy, k - 1, axis=1)[:, :k]  # the k lowest, as the peer's topk(largest=False)
    expected = np.bincount(kept.flatten(), minlength=16) / m
    tolerance = 4 * np.sqrt(expected * (1 - expected) * (1 / n + 1 / m)) + 1e-9
    assert tolerance.max() < 0.02
    np.testing.assert_array_less(np.abs(_our_selection_rates(OPEN_HBIRD.select, k, n) - expected), tolerance)
    # the same comparison rejects the default preset's rarest-class-first selection
    assert (np.abs(_our_selection_rates(PROTOCOLS["default"].select, k, n) - expected) > tolerance).any()
