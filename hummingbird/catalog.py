"""Names and defaults the command line shows before any heavy library is imported.

Kept free of torch/timm/faiss imports so that ``hummingbird --help`` answers at once. The modules that
implement these names (``backbones``, ``datasets``) import them from here or are checked against
them by the tests.
"""

from __future__ import annotations

# Backbone presets of ``hummingbird.backbones.PRESETS`` (which maps each to its timm model).
PRESET_NAMES = ("dino_vits16", "dino_vits8", "dino_vitb16", "dino_vitb8", "dinov2_vits14", "dinov2_vitb14",
                "dinov2_vits14_reg", "dinov2_vitb14_reg", "clip_vitb16", "mae_vitb16")

RANDOM_WEIGHTS = "random"  # --weights value for a seeded random init

# Position-embedding resampling rules (``hummingbird.pos_embed``) and protocol presets (``hummingbird.protocols``).
POS_EMBED_RULES = ("official", "timm")
PROTOCOL_PRESETS = ("default", "open-hbird")

# The Hummingbird decoder's defaults: neighbours per patch and softmax temperature τ.
DEFAULT_K = 30
DEFAULT_TEMPERATURE = 0.02

# Square input side by patch size when neither --input-size nor a bank gives one.
DEFAULT_INPUT_SIZE = {14: 504, 8: 512, 16: 512}

# Dataset kinds of ``hummingbird.datasets.DATASETS`` and their default (training, evaluation) splits.
DEFAULT_SPLITS = {"voc": ("trainaug", "val"), "ade20k": ("training", "validation"), "folder": ("train", "val"),
                  "coco_things": ("train", "val"), "coco_stuff": ("train", "val"), "cityscapes": ("train", "val")}
DATASET_KINDS = tuple(DEFAULT_SPLITS)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# How ``segment`` turns an image of any shape into network inputs (see ``hummingbird.tiling``).
RESIZE_MODES = ("aspect", "slide", "square")
DEFAULT_RESIZE_MODE = "aspect"  # best labels on real VOC val images, see README "Non-square images"
