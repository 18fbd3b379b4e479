"""How far timm's DINOv3 port is from Meta's official code with and without each loading rule.

Runs on ../shared/peers/dinov3-official/ (official-layout depth-2 checkpoints and the official code's outputs
on 2 real VOC images) and prints, as JSON, the max |difference| of patch, class and storage tokens for:

* ``loader``: ``load_backbone(preset, weights=<official .pth>)`` — all rules (README "DINOv3 loading rules");
* ``no_qv_bias``: rule 1 off — the plain (non-``_qkvb``) timm model, whose filter drops ``qkv.bias``;
* ``fp32_periods``: rule 2 off — timm's float32 formula periods instead of the checkpoint's;
* ``bf16_default_periods``: no periods in the file (timm-layout hub weights) — the presets' bf16-rounded default;
* ``train_mode``: rule 3 off — the model left in train mode.

Usage: ``python eval/dinov3_loading_rules.py [--shared ../shared] [--out runs/dinov3_loading_rules.json]``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import harness
import timm
import torch
from safetensors.torch import load_file
from timm.models.eva import checkpoint_filter_fn

from hummingbird.models.backbones import load_backbone
from hummingbird.models.dinov3 import use_official_rope_periods

PLAIN = {"dinov3_vits16": "vit_small_patch16_dinov3", "dinov3_vits16plus": "vit_small_plus_patch16_dinov3"}


def errors(model: torch.nn.Module, images: torch.Tensor, out: dict, geometry: str, name: str) -> dict:
    """Max |difference| of the model's final patch, class and storage tokens from the official outputs."""
    with torch.inference_mode():
        tokens = model.forward_features(images)
    got = {"patch_tokens": tokens[:, 5:], "cls_token": tokens[:, 0], "storage_tokens": tokens[:, 1:5]}
    return {k: float((v - out[f"{k}_{geometry}_{name}"]).abs().max()) for k, v in got.items()}


def main() -> int:
    parser = harness.parser(__doc__)
    parser.add_argument("--shared", default=str(harness.SHARED), help="the shared assets folder")
    harness.add_out_arg(parser, None, "also write the JSON here")
    args = parser.parse_args()
    folder = Path(args.shared) / "peers" / "dinov3-official"
    out = load_file(str(folder / "outputs.safetensors"))
    torch.set_num_threads(1)
    results = {}
    for name, plain_name in PLAIN.items():
        path = folder / f"{name}_depth2.pth"
        state = torch.load(path, weights_only=True)
        loader = load_backbone(name, weights=path, depth=2).model
        plain = timm.create_model(plain_name, depth=2, num_classes=0)
        plain.load_state_dict(checkpoint_filter_fn(state, plain))  # prints the dropped qkv.bias, as timm does
        use_official_rope_periods(plain, state["rope_embed.periods"].float())
        fp32 = load_backbone(name, weights=path, depth=2).model
        with torch.no_grad():
            fp32.rope.periods.copy_(fp32.rope._compute_periods())
        default = load_backbone(name, weights=path, depth=2).model
        with torch.no_grad():
            default.rope.periods.copy_(default.rope._compute_periods())
        use_official_rope_periods(default)  # what a file without periods gets: the formula rounded to bf16
        train = load_backbone(name, weights=path, depth=2).model.train()
        variants = {"loader": loader, "no_qv_bias": plain.eval(), "fp32_periods": fp32,
                    "bf16_default_periods": default, "train_mode": train}
        for geometry in ("224x224", "224x320"):
            images = out[f"images_{geometry}"]
            results[f"{name} {geometry}"] = {k: errors(m, images, out, geometry, name) for k, m in variants.items()}
    print(json.dumps(results, indent=1))
    harness.write_results(args.out, {"errors": results}, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
