"""Patch encoders: token shapes, dynamic sizes, prefix-token removal, checkpoint loading."""

import os
import re
import subprocess
import sys

import pytest
import torch

from hummingbird.errors import CheckpointError, ConfigError
from hummingbird.models.backbones import PRESETS, load_backbone

TINY = dict(depth=2)


@pytest.mark.parametrize("name,patch", [("dino_vits16", 16), ("dinov2_vits14", 14), ("dinov2_vits14_reg", 14)])
@pytest.mark.parametrize("size", [(1, 1), (2, 3), (5, 4)])
def test_tokens_shape_for_dynamic_sizes(name, patch, size):
    enc = load_backbone(name, weights="random", **TINY)
    h, w = size
    tokens = enc(torch.rand(2, 3, h * patch, w * patch))
    assert tokens.shape == (2, h, w, 384) and tokens.dtype == torch.float32
    assert enc.patch_size == patch


def test_prefix_tokens_removed_match_model_sequence():
    enc = load_backbone("dinov2_vits14_reg", weights="random", **TINY)
    assert enc.num_prefix_tokens == 5  # CLS + 4 registers
    x = torch.rand(1, 3, 28, 42)
    seq = enc.model.forward_features(enc.normalise(x))  # (1, 5 + 2*3, D), final norm applied
    tokens = enc(x)
    torch.testing.assert_close(tokens.reshape(1, 6, -1), seq[:, 5:])


def test_chosen_block_differs_from_last_and_matches_intermediate():
    enc_last = load_backbone("dino_vits16", weights="random", depth=3)
    enc_mid = load_backbone("dino_vits16", weights="random", depth=3, layer=1)
    x = torch.rand(1, 3, 32, 32)
    assert not torch.allclose(enc_last(x), enc_mid(x))
    seq = enc_mid.model.patch_embed(enc_mid.normalise(x))
    seq = enc_mid.model._pos_embed(seq)
    for blk in enc_mid.model.blocks[:2]:
        seq = blk(seq)
    expected = enc_mid.model.norm(seq)[:, 1:].reshape(1, 2, 2, -1)
    torch.testing.assert_close(enc_mid(x), expected)


def test_input_size_not_multiple_of_patch_is_clear_error():
    enc = load_backbone("dinov2_vits14", weights="random", **TINY)
    with pytest.raises(ConfigError, match=r"512x512 is not a multiple of .* patch size 14 \(try input_size=518\)"):
        enc(torch.rand(1, 3, 512, 512))


def test_presets_cover_required_backbones():
    for name in ("dino_vits16", "dino_vits8", "dino_vitb16", "dinov2_vits14", "dinov2_vitb14",
                 "dinov2_vits14_reg", "dinov2_vitb14_reg", "clip_vitb16", "mae_vitb16"):
        assert name in PRESETS
    with pytest.raises(ConfigError, match="unknown backbone 'resnet50'"):
        load_backbone("resnet50", weights="random")


def _dino_official_layout(model) -> dict:
    """A state dict laid out like the official DINO release (no head; same block names as timm)."""
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head")}


def test_loads_official_dino_state_dict(tmp_path):
    source = load_backbone("dino_vits16", weights="random", seed=7, **TINY)
    path = tmp_path / "dino_deitsmall16_pretrain.pth"
    torch.save(_dino_official_layout(source.model), path)
    loaded = load_backbone("dino_vits16", weights=path, **TINY)
    x = torch.rand(1, 3, 48, 32)
    torch.testing.assert_close(loaded(x), source(x))
    assert loaded.weights_id.startswith("sha256:") and len(loaded.weights_id) == 71


def test_loads_full_dino_training_checkpoint(tmp_path):
    source = load_backbone("dino_vits16", weights="random", seed=3, **TINY)
    teacher = {f"backbone.{k}": v for k, v in _dino_official_layout(source.model).items()}
    teacher["head.mlp.0.weight"] = torch.zeros(4, 4)  # the DINO projection head is dropped
    path = tmp_path / "checkpoint.pth"
    torch.save({"teacher": teacher, "student": {}, "epoch": 100}, path)
    loaded = load_backbone("dino_vits16", weights=path, **TINY)
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), source(x))


def test_loads_timm_safetensors(tmp_path):
    from safetensors.torch import save_file

    source = load_backbone("dinov2_vits14_reg", weights="random", seed=5, **TINY)
    path = tmp_path / "model.safetensors"
    save_file(source.model.state_dict(), path)
    loaded = load_backbone("dinov2_vits14_reg", weights=path, **TINY)
    x = torch.rand(1, 3, 28, 28)
    torch.testing.assert_close(loaded(x), source(x))


def test_weights_of_another_architecture_list_keys(tmp_path):
    other = load_backbone("dino_vits16", weights="random", depth=3)
    path = tmp_path / "vits_depth3.pth"
    torch.save(other.model.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"vits_depth3.pth: weights do not fit .*unexpected keys \(\d+\): blocks.2"):
        load_backbone("dino_vits16", weights=path, **TINY)
    wide = load_backbone("dino_vitb16", weights="random", **TINY)
    torch.save(wide.model.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"shape mismatches \(30\): blocks.0.attn.proj.bias \(768,\) vs model \(384,\)"):
        load_backbone("dino_vits16", weights=path, **TINY)


def test_unreadable_weights_file(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pth: cannot read weights file"):
        load_backbone("dino_vits16", weights=path, **TINY)
    with pytest.raises(CheckpointError, match="missing.pth: weights file not found"):
        load_backbone("dino_vits16", weights=tmp_path / "missing.pth", **TINY)


def test_offline_without_weights_is_clear_error_not_hang(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    env.pop("HUMMINGBIRD_WEIGHTS", None)
    code = ("from hummingbird.cli.main import main; import sys; "
            "sys.exit(main(['build-memory', '--dataset', 'folder', '--data-root', '.', '--backbone', 'dino_vits16', "
            "'--out', 'x.safetensors']))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    # where the official weights are published, and the --weights line that uses the downloaded file
    assert "https://dl.fbaipublicfiles.com/dino/dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth" in proc.stderr
    assert "https://huggingface.co/timm/vit_small_patch16_224.dino" in proc.stderr
    assert proc.stderr.rstrip().endswith("then give it: --weights dino_deitsmall16_pretrain.pth (or set "
                                         "HUMMINGBIRD_WEIGHTS)")


def test_offline_messages_name_each_presets_weights_from_python_too(monkeypatch, tmp_path):
    from hummingbird.errors import WeightsUnavailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    expected = {
        "dinov2_vits14_reg": "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_reg4_pretrain.pth "
                             "(or timm's model.safetensors from https://huggingface.co/timm/"
                             "vit_small_patch14_reg4_dinov2.lvd142m) where you are online, then give it: "
                             "weights='dinov2_vits14_reg4_pretrain.pth'",
        "dinov3_vits16": "request the official checkpoint at https://github.com/facebookresearch/dinov3",
        "siglip2_vitb16": "https://huggingface.co/timm/vit_base_patch16_siglip_512.v2_webli where you are online, then "
                          "give it: backbone='siglip2_vitb16' weights='model.safetensors'",
    }
    for name, words in expected.items():
        with pytest.raises(WeightsUnavailableError, match=re.escape(words)):
            load_backbone(name, weights=None, depth=1)


def test_loads_official_dinov2_register_layout(tmp_path):
    source = load_backbone("dinov2_vits14_reg", weights="random", seed=11, **TINY)
    state = {k: v.clone() for k, v in source.model.state_dict().items()}
    # official layout: registers named register_tokens, a mask token, and the CLS position in pos_embed
    cls_pos = torch.randn(1, 1, state["pos_embed"].shape[-1])
    state["register_tokens"] = state.pop("reg_token")
    state["cls_token"] = state["cls_token"] - cls_pos
    state["pos_embed"] = torch.cat([cls_pos, state["pos_embed"]], dim=1)
    state["mask_token"] = torch.zeros(1, state["cls_token"].shape[-1])
    path = tmp_path / "dinov2_vits14_reg4_pretrain.pth"
    torch.save(state, path)
    loaded = load_backbone("dinov2_vits14_reg", weights=path, **TINY)
    x = torch.rand(1, 3, 42, 28)
    torch.testing.assert_close(loaded(x), source(x))


def test_registers_missing_or_present_name_the_key(tmp_path):
    plain = load_backbone("dinov2_vits14", weights="random", **TINY)
    torch.save(plain.model.state_dict(), tmp_path / "dinov2_noreg.pth")
    with pytest.raises(CheckpointError, match=r"dinov2_noreg.pth: .*checkpoint has no register tokens .*the model has "
                                              r"4 \(reg_token\)"):
        load_backbone("dinov2_vits14_reg", weights=tmp_path / "dinov2_noreg.pth", **TINY)
    registers = load_backbone("dinov2_vits14_reg", weights="random", **TINY).model.state_dict()
    registers["register_tokens"] = registers.pop("reg_token")
    torch.save(registers, tmp_path / "dinov2_reg.pth")
    with pytest.raises(CheckpointError, match=r"dinov2_reg.pth: .*4 register tokens \(register_tokens\), the model has "
                                              r"none"):
        load_backbone("dinov2_vits14", weights=tmp_path / "dinov2_reg.pth", **TINY)


def test_several_layers_are_concatenated_in_the_order_given():
    both = load_backbone("dinov3_vits16", weights="random", depth=3, layer=[-1, 0])
    last = load_backbone("dinov3_vits16", weights="random", depth=3)
    first = load_backbone("dinov3_vits16", weights="random", depth=3, layer=0)
    x = torch.rand(1, 3, 32, 48)
    torch.testing.assert_close(both(x), torch.cat([last(x), first(x)], dim=-1))
    assert both.embed_dim == 768 and both.metadata()["layer"] == [2, 0] and first.metadata()["layer"] == 0
    with pytest.raises(ConfigError, match=r"layer=\[5\] is out of range"):
        load_backbone("dinov3_vits16", weights="random", depth=3, layer=[0, 5])


def test_rope_backbones_refuse_learned_grid_rules():
    encoder = load_backbone("dinov3_vits16", weights="random", depth=1, pos_embed="rope")  # a bank's own rule
    assert encoder.pos_embed == "rope"
    with pytest.raises(ConfigError, match="pos_embed='official': resampling rules apply to ViTs whose only position "
                                          "signal is a learned grid; this Eva uses 'rope' positions"):
        load_backbone("dinov3_vits16", weights="random", depth=1, pos_embed="official")


def test_weights_of_another_family_are_named_as_such(tmp_path):
    """DINOv2 weights given to a DINOv3 preset (and the reverse): the message names both architectures and the
    presets the file fits, not a register-token or key-name detail."""
    dinov2 = tmp_path / "dinov2_weights.pth"
    torch.save(load_backbone("dinov2_vits14", weights="random").model.state_dict(), dinov2)
    with pytest.raises(CheckpointError, match=r"dinov2_weights.pth: weights of another model family: the checkpoint is "
                                              r"a ViT with a learned position grid .*patch 14, width 384, 12 blocks, no "
                                              r"register tokens; this backbone is a ViT with rotary positions .*patch "
                                              r"16.*4 register/storage tokens; .*\(dinov2_vits14\)"):
        load_backbone("dinov3_vits16", weights=dinov2)
    dinov3 = tmp_path / "dinov3_weights.pth"
    torch.save(load_backbone("dinov3_vits16", weights="random", depth=2).model.state_dict(), dinov3)
    with pytest.raises(CheckpointError, match=r"another model family: the checkpoint is a ViT with rotary positions"):
        load_backbone("dinov2_vits14_reg", weights=dinov3, depth=2)
