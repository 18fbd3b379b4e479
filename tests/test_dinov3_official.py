"""Official DINOv3 checkpoints load so that timm's port reproduces Meta's own code (../shared/peers/dinov3-official/):
patch, class and storage tokens and an intermediate layer within 1e-5, at a square and a non-square grid."""

import pytest
import torch

from hummingbird.errors import CheckpointError
from hummingbird.models.backbones import load_backbone
from tests.realdata import real_peer

MODELS = ("dinov3_vits16", "dinov3_vits16plus")
WIDTH = 384


@pytest.fixture(scope="module")
def reference():
    from safetensors.torch import load_file

    folder = real_peer("dinov3-official")
    return folder, load_file(str(folder / "outputs.safetensors"))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("geometry", ["224x224", "224x320"])
def test_official_checkpoint_reproduces_the_official_code(reference, model, geometry):
    folder, out = reference
    encoder = load_backbone(model, weights=folder / f"{model}_depth2.pth", depth=2, layer=[-1, 0])
    assert not encoder.model.training and encoder.pos_embed == "rope"
    images = out[f"images_{geometry}"]
    with torch.inference_mode():
        tokens, prefix = encoder.tokens_and_prefix_from_normalised(images)
    h, w = (int(s) // 16 for s in geometry.split("x"))
    assert tokens.shape == (2, h, w, 2 * WIDTH) and prefix.shape == (2, 5, 2 * WIDTH)
    last, first = tokens[..., :WIDTH], tokens[..., WIDTH:]
    expected = {"patch_tokens": (last.reshape(2, h * w, WIDTH), out[f"patch_tokens_{geometry}_{model}"]),
                "cls_token": (prefix[:, 0, :WIDTH], out[f"cls_token_{geometry}_{model}"]),
                "storage_tokens": (prefix[:, 1:, :WIDTH], out[f"storage_tokens_{geometry}_{model}"])}
    if f"intermediate_layer0_{geometry}_{model}" in out:
        expected["intermediate_layer0"] = (first.permute(0, 3, 1, 2), out[f"intermediate_layer0_{geometry}_{model}"])
    errors = {name: (got - want).abs().max().item() for name, (got, want) in expected.items()}
    assert max(errors.values()) < 1e-5, errors


def test_loader_takes_the_checkpoints_bf16_periods_and_masked_qv_biases(reference):
    folder, _ = reference
    state = torch.load(folder / "dinov3_vits16_depth2.pth", weights_only=True)
    encoder = load_backbone("dinov3_vits16", weights=folder / "dinov3_vits16_depth2.pth", depth=2)
    torch.testing.assert_close(encoder.model.rope.periods, state["rope_embed.periods"].float(), rtol=0, atol=0)
    bias = state["blocks.1.attn.qkv.bias"] * state["blocks.1.attn.qkv.bias_mask"]
    torch.testing.assert_close(encoder.model.blocks[1].attn.q_bias, bias[:WIDTH], rtol=0, atol=0)
    torch.testing.assert_close(encoder.model.blocks[1].attn.v_bias, bias[2 * WIDTH:], rtol=0, atol=0)
    # without a checkpoint (hub weights, random init) the preset uses the same bf16-rounded periods
    plain = load_backbone("dinov3_vits16", weights="random", depth=1)
    torch.testing.assert_close(plain.model.rope.periods, encoder.model.rope.periods, rtol=0, atol=0)


def test_checkpoints_that_do_not_fit_name_their_keys(reference, tmp_path):
    folder, _ = reference
    path = folder / "dinov3_vits16_depth2.pth"
    with pytest.raises(CheckpointError, match=r"depth2.pth: non-zero q/v biases in blocks.0.attn.qkv.bias.*_qkvb"):
        load_backbone("timm:vit_small_patch16_dinov3", weights=path, depth=2)
    with pytest.raises(CheckpointError, match=r"depth2.pth: weights do not fit .*missing keys \(\d+\): blocks.2"):
        load_backbone("dinov3_vits16", weights=path, depth=3)
    with pytest.raises(CheckpointError, match=r"missing keys \(8\): blocks.0.mlp.fc1_g.bias.*unexpected keys \(4\): blocks.0.mlp.fc1.bias"):
        load_backbone("dinov3_vits16plus", weights=path, depth=2)
    state = torch.load(path, weights_only=True)
    del state["storage_tokens"]
    torch.save(state, tmp_path / "no_storage.pth")
    with pytest.raises(CheckpointError, match=r"no_storage.pth: .*checkpoint has no register tokens .*the model has 4 \(reg_token\)"):
        load_backbone("dinov3_vits16", weights=tmp_path / "no_storage.pth", depth=2)
