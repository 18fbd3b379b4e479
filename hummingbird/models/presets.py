"""The backbone registry: one declaration of every preset, read by the light ``--help`` catalog and by
the loader (:mod:`hummingbird.models.backbones`).

Kept free of torch/timm imports so that ``hummingbird --help`` and ``hummingbird backbones`` answer at
once. ``tests/test_backbone_presets.py`` builds every preset with timm and checks the declared patch
size, width, depth, normalisation and position rule against the model timm builds.

Position rules (``Preset.position``, recorded in bank metadata as ``pos_embed``):

* ``official`` / ``timm`` — learned absolute position embeddings, resampled to other grids by the
  DINO/DINOv2 code's rule or by timm's (see :mod:`hummingbird.models.pos_embed`; ``--pos-embed`` picks one);
* ``rope`` — rotary embeddings only (DINOv3, EUPE), computed per input grid with each axis normalised by
  its own size: nothing to resample;
* ``rope+timm`` — rotary embeddings plus a learned absolute grid resampled by timm (Perception Encoder);
* ``naflex`` — timm NaFlexVit's own resize of the learned grid to each input's aspect ratio (SigLIP 2
  NaFlex: bilinear; C-RADIO: crop of the 128×128 grid after an aspect-preserving resize).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
SAT493M = ((0.430, 0.411, 0.296), (0.213, 0.156, 0.143))  # DINOv3 satellite weights (official README)
OPENAI_CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

LEARNED_POSITION_RULES = ("official", "timm")  # what --pos-embed chooses between
POSITION_RULES = LEARNED_POSITION_RULES + ("rope", "rope+timm", "naflex")


@dataclass(frozen=True)
class Preset:
    """A named backbone.

    Attributes:
        timm_name: timm architecture with its pretrained tag (``arch.tag``).
        family: ``dino``, ``dinov2``, ``dinov3``, ``eupe``, ``pe``, ``siglip2``, ``c-radio``, ``clip``, ``mae``.
        description: one line for the table.
        patch_size, embed_dim, depth: of the full model.
        input_size: default square input side (pixels) when neither ``--input-size`` nor a bank gives one.
        mean, std: the official input normalisation.
        position: position rule (module docstring); for learned grids the default ``--pos-embed``.
        weights: where the official weights come from.
        official_files: official checkpoint file names (without suffix and ``-<hash>``) that name this preset.
    """

    timm_name: str
    family: str
    description: str
    patch_size: int
    embed_dim: int
    depth: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    position: str
    weights: str
    official_files: tuple[str, ...] = ()

    @property
    def timm_arch(self) -> str:
        """The timm architecture without its pretrained tag."""
        return self.timm_name.split(".")[0]

    @property
    def learned_positions(self) -> bool:
        """Whether ``--pos-embed`` rules apply (a learned absolute grid is the only position signal)."""
        return self.position in LEARNED_POSITION_RULES


def _p(timm_name, family, description, patch, dim, depth, size, norm, position, weights, *files) -> Preset:
    return Preset(timm_name, family, description, patch, dim, depth, size, norm[0], norm[1], position, weights,
                  tuple(files))


_DINO = "Meta: dl.fbaipublicfiles.com/dino (.pth); HF timm/"
_DINOV2 = "Meta: dl.fbaipublicfiles.com/dinov2 (.pth); HF timm/"
_DINOV3 = "Meta, on request (ai.meta.com/dinov3, DINOv3 License; .pth); HF timm/ (gated)"
_EUPE = "Meta EUPE (FAIR non-commercial research licence); HF timm/"
_PE = "Meta Perception Encoder (Apache-2.0); HF timm/"
_SIGLIP2 = "Google big_vision SigLIP 2 (Apache-2.0); HF timm/"
_RADIO = "NVIDIA C-RADIO (NVIDIA Open Model License); HF timm/ (remapped from nvidia/C-RADIO*)"

PRESETS: dict[str, Preset] = {
    # DINO, DINOv2: learned position grids, resampled by the official code's rule by default
    "dino_vits16": _p("vit_small_patch16_224.dino", "dino", "DINO ViT-S/16", 16, 384, 12, 512, IMAGENET,
                      "official", _DINO, "dino_deitsmall16_pretrain"),
    "dino_vits8": _p("vit_small_patch8_224.dino", "dino", "DINO ViT-S/8", 8, 384, 12, 512, IMAGENET, "official",
                     _DINO, "dino_deitsmall8_pretrain"),
    "dino_vitb16": _p("vit_base_patch16_224.dino", "dino", "DINO ViT-B/16", 16, 768, 12, 512, IMAGENET,
                      "official", _DINO, "dino_vitbase16_pretrain"),
    "dino_vitb8": _p("vit_base_patch8_224.dino", "dino", "DINO ViT-B/8", 8, 768, 12, 512, IMAGENET, "official",
                     _DINO, "dino_vitbase8_pretrain"),
    "dinov2_vits14": _p("vit_small_patch14_dinov2.lvd142m", "dinov2", "DINOv2 ViT-S/14", 14, 384, 12, 504,
                        IMAGENET, "official", _DINOV2, "dinov2_vits14_pretrain"),
    "dinov2_vitb14": _p("vit_base_patch14_dinov2.lvd142m", "dinov2", "DINOv2 ViT-B/14", 14, 768, 12, 504,
                        IMAGENET, "official", _DINOV2, "dinov2_vitb14_pretrain"),
    "dinov2_vitl14": _p("vit_large_patch14_dinov2.lvd142m", "dinov2", "DINOv2 ViT-L/14", 14, 1024, 24, 504,
                        IMAGENET, "official", _DINOV2, "dinov2_vitl14_pretrain"),
    "dinov2_vitg14": _p("vit_giant_patch14_dinov2.lvd142m", "dinov2", "DINOv2 ViT-g/14", 14, 1536, 40, 504,
                        IMAGENET, "official", _DINOV2, "dinov2_vitg14_pretrain"),
    "dinov2_vits14_reg": _p("vit_small_patch14_reg4_dinov2.lvd142m", "dinov2", "DINOv2 ViT-S/14, 4 registers", 14,
                            384, 12, 504, IMAGENET, "official", _DINOV2, "dinov2_vits14_reg4_pretrain"),
    "dinov2_vitb14_reg": _p("vit_base_patch14_reg4_dinov2.lvd142m", "dinov2", "DINOv2 ViT-B/14, 4 registers", 14,
                            768, 12, 504, IMAGENET, "official", _DINOV2, "dinov2_vitb14_reg4_pretrain"),
    "dinov2_vitl14_reg": _p("vit_large_patch14_reg4_dinov2.lvd142m", "dinov2", "DINOv2 ViT-L/14, 4 registers", 14,
                            1024, 24, 504, IMAGENET, "official", _DINOV2, "dinov2_vitl14_reg4_pretrain"),
    "dinov2_vitg14_reg": _p("vit_giant_patch14_reg4_dinov2.lvd142m", "dinov2", "DINOv2 ViT-g/14, 4 registers", 14,
                            1536, 40, 504, IMAGENET, "official", _DINOV2, "dinov2_vitg14_reg4_pretrain"),
    # DINOv3: RoPE, 4 storage tokens; the _qkvb timm models carry the official q/v biases
    "dinov3_vits16": _p("vit_small_patch16_dinov3_qkvb.lvd1689m", "dinov3", "DINOv3 ViT-S/16 (LVD-1689M)", 16, 384,
                        12, 512, IMAGENET, "rope", _DINOV3, "dinov3_vits16_pretrain_lvd1689m"),
    "dinov3_vits16plus": _p("vit_small_plus_patch16_dinov3_qkvb.lvd1689m", "dinov3",
                            "DINOv3 ViT-S+/16, SwiGLU (LVD-1689M)", 16, 384, 12, 512, IMAGENET, "rope", _DINOV3,
                            "dinov3_vits16plus_pretrain_lvd1689m"),
    "dinov3_vitb16": _p("vit_base_patch16_dinov3_qkvb.lvd1689m", "dinov3", "DINOv3 ViT-B/16 (LVD-1689M)", 16, 768,
                        12, 512, IMAGENET, "rope", _DINOV3, "dinov3_vitb16_pretrain_lvd1689m"),
    "dinov3_vitl16": _p("vit_large_patch16_dinov3_qkvb.lvd1689m", "dinov3", "DINOv3 ViT-L/16 (LVD-1689M)", 16,
                        1024, 24, 512, IMAGENET, "rope", _DINOV3, "dinov3_vitl16_pretrain_lvd1689m"),
    "dinov3_vitl16_sat493m": _p("vit_large_patch16_dinov3_qkvb.sat493m", "dinov3",
                                "DINOv3 ViT-L/16 (SAT-493M satellite)", 16, 1024, 24, 512, SAT493M, "rope", _DINOV3,
                                "dinov3_vitl16_pretrain_sat493m"),
    "dinov3_vith16plus": _p("vit_huge_plus_patch16_dinov3_qkvb.lvd1689m", "dinov3",
                            "DINOv3 ViT-H+/16, SwiGLU (LVD-1689M)", 16, 1280, 32, 512, IMAGENET, "rope", _DINOV3,
                            "dinov3_vith16plus_pretrain_lvd1689m"),
    "dinov3_vit7b16": _p("vit_7b_patch16_dinov3.lvd1689m", "dinov3", "DINOv3 ViT-7B/16 (LVD-1689M)", 16, 4096, 40,
                         512, IMAGENET, "rope", _DINOV3, "dinov3_vit7b16_pretrain_lvd1689m"),
    "dinov3_vit7b16_sat493m": _p("vit_7b_patch16_dinov3.sat493m", "dinov3", "DINOv3 ViT-7B/16 (SAT-493M satellite)",
                                 16, 4096, 40, 512, SAT493M, "rope", _DINOV3, "dinov3_vit7b16_pretrain_sat493m"),
    # EUPE: DINOv3 architecture, distilled from several teachers
    "eupe_vitt16": _p("vit_tiny_patch16_dinov3_qkvb.eupe_lvd1689m", "eupe", "EUPE ViT-T/16", 16, 192, 12, 512,
                      IMAGENET, "rope", _EUPE),
    "eupe_vits16": _p("vit_small_patch16_dinov3_qkvb.eupe_lvd1689m", "eupe", "EUPE ViT-S/16", 16, 384, 12, 512,
                      IMAGENET, "rope", _EUPE),
    "eupe_vitb16": _p("vit_base_patch16_dinov3_qkvb.eupe_lvd1689m", "eupe", "EUPE ViT-B/16", 16, 768, 12, 512,
                      IMAGENET, "rope", _EUPE),
    # Perception Encoder, spatial (dense) variants: RoPE + a learned grid
    "pe_spatial_vitt16": _p("vit_pe_spatial_tiny_patch16_512.fb", "pe", "PE-Spatial T/16", 16, 192, 12, 512, HALF,
                            "rope+timm", _PE),
    "pe_spatial_vits16": _p("vit_pe_spatial_small_patch16_512.fb", "pe", "PE-Spatial S/16", 16, 384, 12, 512, HALF,
                            "rope+timm", _PE),
    "pe_spatial_vitb16": _p("vit_pe_spatial_base_patch16_512.fb", "pe", "PE-Spatial B/16", 16, 768, 12, 512, HALF,
                            "rope+timm", _PE),
    "pe_spatial_vitl14": _p("vit_pe_spatial_large_patch14_448.fb", "pe", "PE-Spatial L/14", 14, 1024, 24, 448, HALF,
                            "rope+timm", _PE),
    "pe_spatial_vitg14": _p("vit_pe_spatial_gigantic_patch14_448.fb", "pe", "PE-Spatial G/14", 14, 1536, 50, 448,
                            HALF, "rope+timm", _PE),
    # SigLIP 2: fixed-resolution towers (learned grid, timm resampling) and NaFlex towers (any aspect ratio)
    "siglip2_vitb16": _p("vit_base_patch16_siglip_512.v2_webli", "siglip2", "SigLIP 2 ViT-B/16 @512", 16, 768, 12,
                         512, HALF, "timm", _SIGLIP2),
    "siglip2_so400m16": _p("vit_so400m_patch16_siglip_512.v2_webli", "siglip2", "SigLIP 2 So400m/16 @512", 16, 1152,
                           27, 512, HALF, "timm", _SIGLIP2),
    "siglip2_naflex_vitb16": _p("naflexvit_base_patch16_siglip.v2_webli", "siglip2", "SigLIP 2 NaFlex ViT-B/16", 16,
                                768, 12, 512, HALF, "naflex", _SIGLIP2),
    "siglip2_naflex_so400m16": _p("naflexvit_so400m_patch16_siglip.v2_webli", "siglip2", "SigLIP 2 NaFlex So400m/16",
                                  16, 1152, 27, 512, HALF, "naflex", _SIGLIP2),
    # C-RADIO: timm's NaFlexVit ports reproduce RADIO's position-grid crop at every resolution
    "cradio_v3_vitb16": _p("naflexvit_base_patch16_radio_v3.c_radio", "c-radio", "C-RADIOv3-B/16", 16, 768, 12, 512,
                           OPENAI_CLIP, "naflex", _RADIO),
    "cradio_v3_vitl16": _p("naflexvit_large_patch16_radio_v3.c_radio", "c-radio", "C-RADIOv3-L/16", 16, 1024, 24,
                           512, OPENAI_CLIP, "naflex", _RADIO),
    "cradio_v3_vith16": _p("naflexvit_huge_patch16_radio_v3.c_radio", "c-radio", "C-RADIOv3-H/16", 16, 1280, 32,
                           512, OPENAI_CLIP, "naflex", _RADIO),
    "cradio_v3_vitg16": _p("naflexvit_giant_patch16_radio_v3.c_radio", "c-radio", "C-RADIOv3-g/16", 16, 1536, 40,
                           512, OPENAI_CLIP, "naflex", _RADIO),
    "cradio_v4_so400m16": _p("naflexvit_so400m_patch16_radio_v4.c_radio", "c-radio", "C-RADIOv4-SO400M/16", 16, 1152,
                             27, 512, OPENAI_CLIP, "naflex", _RADIO),
    "cradio_v4_vith16": _p("naflexvit_huge_patch16_radio_v4.c_radio", "c-radio", "C-RADIOv4-H/16", 16, 1280, 32, 512,
                           OPENAI_CLIP, "naflex", _RADIO),
    # others
    "clip_vitb16": _p("vit_base_patch16_clip_224.openai", "clip", "OpenAI CLIP ViT-B/16 image tower", 16, 768, 12,
                      512, OPENAI_CLIP, "timm", "OpenAI CLIP (MIT); HF timm/"),
    "mae_vitb16": _p("vit_base_patch16_224.mae", "mae", "MAE ViT-B/16", 16, 768, 12, 512, IMAGENET, "timm",
                     "Meta: dl.fbaipublicfiles.com/mae (.pth); HF timm/", "mae_pretrain_vit_base"),
}

_HASH_SUFFIX = re.compile(r"-[0-9a-f]{8}$")  # official DINOv3 files end in -<8 hex digits of their SHA-256>


def preset_from_filename(path: str | Path) -> str | None:
    """The preset an official or timm-named weights file belongs to (``None`` if unknown)."""
    stem = Path(path).name.split(".safetensors")[0].split(".pth")[0].split(".bin")[0]
    stem = _HASH_SUFFIX.sub("", stem)
    for name, preset in PRESETS.items():
        if stem in preset.official_files or stem == preset.timm_name:
            return name
    return None


_DINOV3_REQUEST = "https://github.com/facebookresearch/dinov3 (download links sent on request, DINOv3 License)"


def official_download(name: str) -> str | None:
    """Where Meta publishes a preset's official checkpoint (a direct URL for DINO, DINOv2 and MAE; the page
    to request DINOv3's links), else ``None``."""
    preset = PRESETS.get(name)
    if preset is None or not preset.official_files:
        return None
    file = preset.official_files[0]
    if preset.family == "dino":
        return f"https://dl.fbaipublicfiles.com/dino/{file}/{file}.pth"
    if preset.family == "dinov2":
        return f"https://dl.fbaipublicfiles.com/dinov2/{file.split('_reg4')[0].removesuffix('_pretrain')}/{file}.pth"
    if preset.family == "mae":
        return f"https://dl.fbaipublicfiles.com/mae/pretrain/{file}.pth"
    if preset.family == "dinov3":
        return _DINOV3_REQUEST
    return None


def timm_download(timm_name: str) -> str:
    """The Hugging Face page of timm's weights for a timm model name (``model.safetensors`` there)."""
    return f"https://huggingface.co/timm/{timm_name}"


def weights_hint(name: str) -> str:
    """Where a backbone's weights are published and the setting that uses the downloaded file (``--weights
    FILE`` on the command line, ``weights='FILE'`` from Python), for messages when no pretrained weights can
    be obtained."""
    from hummingbird.errors import option

    preset = PRESETS.get(name)
    timm_name = preset.timm_name if preset else name.removeprefix("timm:")
    official, timm_page = official_download(name), timm_download(timm_name)
    if official and official.startswith("https://dl."):
        return (f"download the official checkpoint {official} (or timm's model.safetensors from {timm_page}) where "
                f"you are online, then give it: {option('weights', official.rsplit('/', 1)[1])}")
    if official:
        return (f"request the official checkpoint at {official} (or take timm's model.safetensors from "
                f"{timm_page}), then give it: {option('weights', 'FILE.pth', raw=True)}")
    return (f"download timm's model.safetensors from {timm_page} where you are online, then give it: "
            f"{option('backbone', name)} {option('weights', 'model.safetensors')}")


# Where each family's weights come from, in a few words (the narrow ``hummingbird backbones`` table).
_SHORT_SOURCE = {"dino": "Meta .pth; HF timm", "dinov2": "Meta .pth; HF timm", "dinov3": "Meta on request; HF (gated)",
                 "eupe": "Meta, non-commercial; HF timm", "pe": "Meta, Apache-2.0; HF timm",
                 "siglip2": "Google, Apache-2.0; HF timm", "c-radio": "NVIDIA Open Model Lic.; HF timm",
                 "clip": "OpenAI, MIT; HF timm", "mae": "Meta .pth; HF timm"}
TABLE_WIDTH = 100  # columns the default table fits in


def preset_table() -> list[dict]:
    """Every preset as a JSON-ready row (``hummingbird backbones --json``), with where its weights are
    published (``official_download``, ``timm_download``)."""
    return [{"preset": name, **asdict(p), "mean": list(p.mean), "std": list(p.std),
             "official_files": list(p.official_files), "official_download": official_download(name),
             "timm_download": timm_download(p.timm_name)} for name, p in PRESETS.items()]


def _aligned(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in [header, *rows]]


def preset_table_text(wide: bool = False) -> str:
    """Every preset as an aligned text table (``hummingbird backbones``): within :data:`TABLE_WIDTH`
    columns, or ``wide`` with the timm model, normalisation and where the official weights are published."""
    if not wide:
        header = ("preset", "patch", "dim x depth", "input", "positions", "weights")
        rows = [(name, str(p.patch_size), f"{p.embed_dim} x {p.depth}", str(p.input_size), p.position,
                 _SHORT_SOURCE.get(p.family, "HF timm")) for name, p in PRESETS.items()]
        return "\n".join(_aligned(header, rows) + ["(timm models, normalisation and the weights' URLs: "
                                                    "hummingbird backbones --wide, or --json)"])
    header = ("preset", "timm model", "patch", "dim", "depth", "input", "mean / std", "positions", "official weights")
    rows = [(name, p.timm_name, str(p.patch_size), str(p.embed_dim), str(p.depth), str(p.input_size),
             f"{'/'.join(f'{v:g}' for v in p.mean)} / {'/'.join(f'{v:g}' for v in p.std)}", p.position,
             f"{p.weights}; {official_download(name) or timm_download(p.timm_name)}")
            for name, p in PRESETS.items()]
    return "\n".join(_aligned(header, rows))
