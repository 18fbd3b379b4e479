"""Names and defaults the command line shows before any heavy library is imported.

Kept free of torch/timm/faiss imports so that ``hummingbird --help`` answers at once. The modules that
implement these names (``backbones``, ``datasets``) import them from here or are checked against
them by the tests.
"""

from __future__ import annotations

from hummingbird.models.presets import LEARNED_POSITION_RULES, PRESETS

# Backbone presets of the registry ``hummingbird.models.presets.PRESETS`` (which maps each to its timm model).
PRESET_NAMES = tuple(PRESETS)

RANDOM_WEIGHTS = "random"  # --weights value for a seeded random init (hummingbird.files.paths.RANDOM_WEIGHTS)

# The backbone when none is given and no weights file names one (timm's pretrained weights, or random ones):
# the one of the README's main job.
DEFAULT_BACKBONE = "dinov2_vits14"

# Resampling rules of learned position embeddings (``hummingbird.models.pos_embed``) and protocol presets
# (``hummingbird.evaluation.protocols``).
POS_EMBED_RULES = LEARNED_POSITION_RULES
PROTOCOL_PRESETS = ("default", "open-hbird")

# The Hummingbird decoder's defaults: neighbours per patch and softmax temperature τ.
DEFAULT_K = 30
DEFAULT_TEMPERATURE = 0.02

# Square input side by patch size for timm:<name> backbones when neither --input-size nor a bank gives one
# (presets declare their own, ``Preset.input_size``).
DEFAULT_INPUT_SIZE = {14: 504, 8: 512, 16: 512}

# Dataset kinds of ``hummingbird.datasets.base.DATASETS`` and their default (training, evaluation) splits.
DEFAULT_SPLITS = {"voc": ("trainaug", "val"), "ade20k": ("training", "validation"), "folder": ("train", "val"),
                  "coco_things": ("train", "val"), "coco_stuff": ("train", "val"), "cityscapes": ("train", "val"),
                  "coco-json": ("annotations.json", "annotations.json"), "labelme": ("all", "all")}
DATASET_KINDS = tuple(DEFAULT_SPLITS)
# RGB-D layouts of ``hummingbird.datasets.depth`` (``--task depth``) and their default (memory, evaluation) splits.
DEFAULT_DEPTH_SPLITS = {"nyu": ("train", "test"), "folder": ("train", "val")}
DEPTH_DATASET_KINDS = tuple(DEFAULT_DEPTH_SPLITS)
VIDEO_DATASET_KINDS = ("davis",)  # --task video: DAVIS-2017 layout (hummingbird.datasets.davis)
# Depth memories (``hummingbird.memory.depth_targets``, ``hummingbird.tasks.depth``; choices in docs/depth.md):
# per-patch targets, their default, and the metrics' Eigen crops.
DEPTH_ENCODINGS = ("mean", "log-mean", "bins")
DEFAULT_DEPTH_ENCODING = "log-mean"
DEPTH_BIN_DECODES = ("expectation", "log-expectation")
DEFAULT_DEPTH_BINS = 64
EIGEN_CROP_NAMES = ("bts", "densedepth", "none")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# How ``segment`` turns an image of any shape into network inputs (see ``hummingbird.memory.tiling``).
RESIZE_MODES = ("aspect", "slide", "square")
DEFAULT_RESIZE_MODE = "aspect"  # best labels on real VOC val images, see README "Non-square images"
