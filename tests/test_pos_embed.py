"""Position-embedding resampling: the official DINO/DINOv2 rule, evaluated directly, and its use by default."""

import numpy as np
import pytest
import torch

from hummingbird.models.backbones import load_backbone
from hummingbird.models.pos_embed import official_resample, use_pos_embed_rule


def _cubic(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution kernel (PyTorch's bicubic, A = -0.75)."""
    t = np.abs(t)
    return np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                    np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))


def _official_weights(m: int, n: int, offset: float = 0.1) -> np.ndarray:
    """``(n, m)`` matrix of the official rule along one axis: output i samples the source at
    ``(i + 0.5) / s - 0.5`` with ``s = (n + offset) / m``, four taps clamped to the border."""
    scale = (n + offset) / m
    weights = np.zeros((n, m))
    for i in range(n):
        x = (i + 0.5) / scale - 0.5
        x0 = np.floor(x)
        for tap in range(-1, 3):
            weights[i, int(np.clip(x0 + tap, 0, m - 1))] += _cubic(x - (x0 + tap))
    return weights


@pytest.mark.parametrize("height, width", [(16, 16), (36, 36), (16, 24), (40, 9)])
def test_official_resampling_equals_direct_evaluation_of_the_formula(height, width):
    m, dim = 37, 5
    grid = torch.randn(1, m * m, dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = np.einsum("hm,wn,mnd->hwd", _official_weights(m, height), _official_weights(m, width),
                         grid.numpy().reshape(m, m, dim))
    got = official_resample(grid.float(), height, width).reshape(height, width, dim).double().numpy()
    np.testing.assert_allclose(got, expected, atol=5e-5)  # float32 arithmetic inside torch: ~1e-5 on values ~2
    by_size = np.einsum("hm,wn,mnd->hwd", _official_weights(m, height, 0), _official_weights(m, width, 0),
                        grid.numpy().reshape(m, m, dim))
    assert np.abs(got - by_size).max() > 1e-2  # the +0.1 in the scale factor is what this checks


def test_official_rule_differs_from_timm_and_is_the_dinov2_default():
    images = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    official = load_backbone("dinov2_vits14", weights="random", depth=2)
    timm_rule = load_backbone("dinov2_vits14", weights="random", depth=2, pos_embed="timm")
    assert official.pos_embed == "official" and official.metadata()["pos_embed"] == "official"
    assert timm_rule.metadata()["pos_embed"] == "timm"
    assert (official(images) - timm_rule(images)).abs().max() > 1e-3
    native = torch.rand(1, 3, 518, 518, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(official(native), timm_rule(native))  # no resampling at the native grid


def test_official_rule_adds_the_resampled_grid_to_patch_embeddings():
    encoder = load_backbone("dino_vits16", weights="random", depth=1)
    model = encoder.model
    assert encoder.pos_embed == "official"
    patches = torch.randn(2, 10, 7, model.embed_dim)
    out = model._pos_embed(patches)
    grid = official_resample(model.pos_embed[:, 1:], 10, 7)
    torch.testing.assert_close(out[:, 0], (model.cls_token + model.pos_embed[:, :1]).expand(2, -1, -1)[:, 0])
    torch.testing.assert_close(out[:, 1:], patches.reshape(2, 70, -1) + grid)


def test_registers_model_keeps_register_tokens_without_position_embedding():
    encoder = load_backbone("dinov2_vits14_reg", weights="random", depth=1)
    model = encoder.model
    out = model._pos_embed(torch.zeros(1, 8, 6, model.embed_dim))
    assert out.shape == (1, model.num_prefix_tokens + 48, model.embed_dim)
    torch.testing.assert_close(out[:, 1:model.num_prefix_tokens], model.reg_token)
    assert encoder(torch.rand(1, 3, 112, 84)).shape == (1, 8, 6, model.embed_dim)


def test_non_dino_presets_keep_timm_resampling_and_rules_are_validated():
    assert load_backbone("mae_vitb16", weights="random", depth=1).pos_embed == "timm"
    encoder = load_backbone("dino_vits16", weights="random", depth=1)
    with pytest.raises(Exception, match="pos_embed='bilinear'"):
        use_pos_embed_rule(encoder.model, "bilinear")
    use_pos_embed_rule(encoder.model, "timm")
    assert encoder.pos_embed == "timm" and "_pos_embed" not in encoder.model.__dict__
