"""The backbone registry: every preset builds with random weights and returns its patch grid on a non-square
input; what the registry declares (patch, width, depth, normalisation, position rule) is what timm builds."""

import json

import pytest
import timm
import torch

from hummingbird.catalog import PRESET_NAMES
from hummingbird.models.backbones import load_backbone
from hummingbird.models.presets import POSITION_RULES, PRESETS, preset_from_filename, timm_download

REDUCED_WIDTH = 256  # for presets wider than this bound (the 7B); their declared width is checked on the meta device
WIDEST_BUILT = 1536


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_and_returns_its_patch_grid_on_a_non_square_input(name):
    preset = PRESETS[name]
    kwargs = dict(depth=1)
    if preset.embed_dim > WIDEST_BUILT:
        kwargs.update(embed_dim=REDUCED_WIDTH, num_heads=4)
    encoder = load_backbone(name, weights="random", **kwargs)
    p = preset.patch_size
    tokens = encoder(torch.rand(1, 3, 2 * p, 3 * p))
    width = kwargs.get("embed_dim", preset.embed_dim)
    assert tokens.shape == (1, 2, 3, width) and torch.isfinite(tokens).all()
    assert encoder.patch_size == p and encoder.pos_embed == preset.position
    assert encoder.mean.flatten().tolist() == pytest.approx(preset.mean)
    assert encoder.std.flatten().tolist() == pytest.approx(preset.std)
    assert encoder.default_input_size == preset.input_size and preset.input_size % p == 0


@pytest.mark.parametrize("name", list(PRESETS))
def test_registry_declares_what_timm_builds(name):
    preset = PRESETS[name]
    cfg = timm.models.get_pretrained_cfg(preset.timm_name)
    assert cfg is not None, f"timm has no pretrained tag {preset.timm_name}"
    with torch.device("meta"):
        model = timm.create_model(preset.timm_name, pretrained=False, num_classes=0)
    embeds = getattr(model, "patch_embed", None) or model.embeds
    assert (embeds.patch_size[0], model.embed_dim, len(model.blocks)) == (preset.patch_size, preset.embed_dim,
                                                                          preset.depth)
    assert tuple(cfg.mean) + tuple(cfg.std) == pytest.approx(preset.mean + preset.std)
    assert preset.position in POSITION_RULES
    assert timm_download(preset.timm_name) == f"https://huggingface.co/{cfg.hf_hub_id}"  # where timm takes them


def test_catalog_reads_the_registry_and_official_file_names_map_to_presets():
    assert PRESET_NAMES == tuple(PRESETS) and len(PRESETS) >= 20
    assert preset_from_filename("dinov3_vits16_pretrain_lvd1689m-08c60483.pth") == "dinov3_vits16"
    assert preset_from_filename("dinov3_vitl16_pretrain_sat493m-eadcf0ff.pth") == "dinov3_vitl16_sat493m"
    assert preset_from_filename("dinov2_vitg14_reg4_pretrain.pth") == "dinov2_vitg14_reg"
    assert preset_from_filename("vit_pe_spatial_base_patch16_512.fb.safetensors") == "pe_spatial_vitb16"
    assert preset_from_filename("dinov3_vits16_depth2.pth") is None


def test_backbones_command_lists_every_preset(capsys):
    from hummingbird.cli.main import main

    assert main(["backbones", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["preset"] for r in rows] == list(PRESETS) and len(rows) >= 20
    dinov3 = next(r for r in rows if r["preset"] == "dinov3_vitl16_sat493m")
    assert dinov3["position"] == "rope" and dinov3["mean"] == [0.430, 0.411, 0.296] and dinov3["patch_size"] == 16
    assert rows[0]["official_download"] == ("https://dl.fbaipublicfiles.com/dino/dino_deitsmall16_pretrain/"
                                            "dino_deitsmall16_pretrain.pth")
    assert main(["backbones"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in table) <= 100  # fits a terminal of 100 columns
    assert len(table) == len(PRESETS) + 2 and table[0].split()[:2] == ["preset", "patch"] and "--wide" in table[-1]
    assert next(line for line in table if line.startswith("dinov3_vits16 ")).split()[1:6] == [
        "16", "384", "x", "12", "512"]
    assert main(["backbones", "--wide"]) == 0
    wide = capsys.readouterr().out.splitlines()
    assert len(wide) == len(PRESETS) + 1 and wide[0].split()[:2] == ["preset", "timm"]
    line = next(line for line in wide if line.startswith("dinov3_vits16 "))
    assert "vit_small_patch16_dinov3_qkvb.lvd1689m" in line and "https://github.com/facebookresearch/dinov3" in line
