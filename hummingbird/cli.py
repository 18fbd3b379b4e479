"""``hummingbird`` command line: build-memory, evaluate, segment, neighbours, viewer, check-dataset.

Only the argument parser lives at import time (``--help`` answers at once); torch, timm, faiss and the
pipeline are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import os
import signal
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from fungi_dense.variants import DEFAULT_VARIANT, VARIANTS
from hummingbird import __version__
from hummingbird.argtypes import (fraction, int_at_least, non_negative_float, non_negative_int, positive_float,
                                  positive_int, unit_interval)
from hummingbird.catalog import (DATASET_KINDS, DEFAULT_INPUT_SIZE, DEFAULT_RESIZE_MODE,  # noqa: F401 (re-exported)
                                 DEFAULT_SPLITS, POS_EMBED_RULES, PRESET_NAMES, PROTOCOL_PRESETS, RANDOM_WEIGHTS,
                                 RESIZE_MODES)
from hummingbird.errors import BankError, ConfigError, HummingbirdError
from hummingbird.precision import PRECISIONS

if TYPE_CHECKING:  # for annotations only; the commands import what they use when they run
    import numpy as np
    import torch
    from PIL import Image

    from fungi_dense.features import FungiConfig
    from hummingbird.backbones import PatchEncoder
    from hummingbird.memory import MemoryBank
    from hummingbird.pipeline import LoaderOptions
    from hummingbird.protocols import Protocol

MAX_CLASSES = 255  # class indices are stored in 8-bit masks whose value 255 means "ignored"


class HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default after its help (unless the help already says it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if not action.option_strings or default is None or default is False or default is argparse.SUPPRESS \
                or "default" in text:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})".strip()


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``hummingbird evaluate: error: argument --k: ...``), exit 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ----------------------------------------------------------------------------- argument groups

def _add_backbone_args(p: argparse.ArgumentParser, from_bank: bool) -> None:
    g = p.add_argument_group("backbone")
    g.add_argument("--backbone", default=None,
                   help=f"preset ({', '.join(PRESET_NAMES)}) or timm:<model name>; default: "
                        + ("the bank's, else " if from_bank else "") + "$HUMMINGBIRD_BACKBONE, else told from an "
                        "official weights file name")
    g.add_argument("--weights", default=None,
                   help="local checkpoint (official DINO/DINOv2/MAE/CLIP .pth, timm .safetensors); "
                        f"'{RANDOM_WEIGHTS}' for a seeded random init; default: "
                        + ("the bank's own file (where it was built, or beside the bank), else " if from_bank else "")
                        + "$HUMMINGBIRD_WEIGHTS, else timm's pretrained weights (local cache, else download when online)")
    g.add_argument("--layer", type=int, default=None,
                   help="block whose tokens are used, negative counts from the end (default: the last"
                        + (", or the bank's)" if from_bank else ")"))
    g.add_argument("--pos-embed", choices=POS_EMBED_RULES, default=None,
                   help="position-embedding resampling to other input sizes: official (the DINO/DINOv2 code's "
                        "bicubic by scale (n+0.1)/M, behind their published numbers) or timm (antialiased bicubic "
                        "to size); default: official for DINO and DINOv2 presets, else timm"
                        + ("; a bank's own" if from_bank else ""))


def _add_feature_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("features (a bank's own settings are used when loading one)")
    g.add_argument("--features", choices=("tokens", "fungi"), default="tokens",
                   help="plain patch tokens, or dense FUNGI (tokens + projected self-supervised gradients)")
    g.add_argument("--fungi-support", default=None,
                   help="FUNGI support memory file: read if it exists, else built from the training split")
    g.add_argument("--fungi-objectives", nargs="+", default=["infonce"], choices=("infonce", "kl"),
                   help="self-supervised losses whose gradients are used")
    g.add_argument("--fungi-projection", choices=("fast", "dense"), default="fast",
                   help="fast: Khatri-Rao sketch, O(D k) per patch; dense: the paper's ±1 matrix, O(D² k)")
    g.add_argument("--fungi-dim", type=positive_int, default=None,
                   help="projected gradient size (default: embedding size)")
    g.add_argument("--fungi-latent-dim", type=positive_int, default=96, help="random head output size")
    g.add_argument("--fungi-negatives", type=positive_int, default=2, help="InfoNCE negatives per patch")
    g.add_argument("--fungi-temperature", type=positive_float, default=0.07, help="InfoNCE temperature")
    g.add_argument("--fungi-support-fraction", type=fraction, default=0.5,
                   help="share of support patches kept, in (0, 1]")
    g.add_argument("--fungi-support-index", default="Flat", help="faiss factory string for the support search")
    g.add_argument("--fungi-layer", default="blocks.-1.attn.proj", help="differentiated linear layer")
    g.add_argument("--fungi-objective-variant", choices=list(VARIANTS), default=DEFAULT_VARIANT,
                   help=f"form of the InfoNCE objective (default: {DEFAULT_VARIANT}): "
                        + "; ".join(f"{v.name}: {v.summary}" for v in VARIANTS.values()))
    g.add_argument("--fungi-seed", type=non_negative_int, default=0,
                   help="seed of the head, the projection and the per-image negative subsampling")
    g.add_argument("--fungi-weights", type=non_negative_float, nargs=2, default=(1.0, 1.0),
                   metavar=("TOKENS", "GRADIENTS"), help="weights of the normalised parts before the final "
                                                         "normalisation")
    g.add_argument("--fungi-pca-dim", type=positive_int, default=None,
                   help="PCA of the FUNGI feature to this size (default: no PCA)")


def _add_one_pass_resize_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resize-mode", choices=("aspect", "square"),
                   default=DEFAULT_RESIZE_MODE if DEFAULT_RESIZE_MODE != "slide" else "aspect",
                   help="aspect: short side to the input size, aspect ratio kept (a non-square patch grid); "
                        "square: squashed to input size² (as segment --resize-mode)")


def _add_bank_query_args(p: argparse.ArgumentParser, k: int | None = None) -> None:
    _add_backbone_args(p, from_bank=True)
    p.add_argument("--fungi-support", default=None, help="FUNGI banks: support memory file (default: the bank's)")
    _add_decoder_args(p)
    if k is not None:
        p.set_defaults(k=k)
    _add_runtime_args(p)


def _add_runtime_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda if available)")
    g.add_argument("--batch-size", type=positive_int, default=8, help="images per forward pass")
    g.add_argument("--num-workers", type=non_negative_int, default=2, help="data-loading processes (0: in process)")
    g.add_argument("--input-size", type=positive_int, default=None,
                   help="square input side in pixels (default: 512, or 504 for /14 backbones; a bank's own)")
    g.add_argument("--seed", type=non_negative_int, default=0, help="seed of sampling and augmentation")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_precision_args(g)


def _add_precision_args(g) -> None:
    g.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="backbone arithmetic: auto (bf16 on CUDA and on CPUs with AMX-BF16 or AVX512-BF16, fp32 "
                        "elsewhere; fp32 under --protocol-preset open-hbird), fp32, bf16 or fp16 (CUDA, AMX-FP16); "
                        "recorded in banks and results; banks are searched across precisions")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile the backbone (compiles once per input shape, tens of seconds; pays only "
                        "on long runs, README 'Precision')")


def _add_num_classes_arg(g) -> None:
    g.add_argument("--num-classes", type=int_at_least(1, MAX_CLASSES), default=None,
                   help="class count of a folder or VOC-layout dataset without classes.txt (default: folder: "
                        "largest mask value + 1; voc: VOC's 21)")


def _add_dataset_args(p: argparse.ArgumentParser, split_help: str) -> None:
    g = p.add_argument_group("dataset")
    g.add_argument("--dataset", choices=DATASET_KINDS, required=True, help="dataset layout (see data/README.md)")
    g.add_argument("--data-root", required=True, help="dataset folder (see data/README.md for layouts)")
    g.add_argument("--split", default=None, help=split_help)
    _add_num_classes_arg(g)


FILESET_HELP = ("ids to use: a shipped official file set by name (voc:1/128:42, voc:1/64:400, ade20k:1/8:783, "
                "voc:full, voc:val; fractions 1/8, 1/64, 1/128, seeds 42, 400, 783, 1293, 4019) or a text file "
                "of ids, one per line")


def _add_protocol_preset_arg(g: argparse._ArgumentGroup, from_bank: bool = False) -> None:
    g.add_argument("--protocol-preset", choices=PROTOCOL_PRESETS, default=None,
                   help="default: this toolkit's settings; open-hbird: open-hummingbird-eval 2.0.0's in every point "
                        "that changes its numbers (its normalisation, memory labels, patch selection, augmentation, "
                        "Hungarian mIoU; README 'Fidelity') (default: "
                        + ("the bank's, else default)" if from_bank else "default)"))


def _add_memory_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    g = p.add_argument_group("memory bank")
    g.add_argument(f"--{prefix}fileset", default=None, help="training " + FILESET_HELP)
    g.add_argument("--memory-size", type=positive_int, default=None,
                   help="patches kept per bank, the same number from each image, chosen by the protocol's "
                        "selection (default: every labelled patch)")
    g.add_argument("--augmentation-epochs", type=positive_int, default=1, help="augmented passes over the images")
    g.add_argument("--no-augment", action="store_true",
                   help="plain resize instead of the protocol's augmentation (default: crop/flip/jitter; "
                        "open-hbird: jitter and crop)")
    g.add_argument("--fp16", action="store_true", help="store features as float16")
    g.add_argument("--shard-images", type=positive_int, default=None,
                   help="write a sharded bank folder (--out DIR), one shard per this many images (default "
                        "256); resumable; implied by an --out without .safetensors and by torchrun")


def _add_decoder_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("decoder")
    g.add_argument("--k", type=positive_int, default=30, help="neighbours per patch")
    g.add_argument("--temperature", type=positive_float, default=0.02, help="softmax temperature τ > 0")
    g.add_argument("--index", default=None,
                   help="auto (exact search for small memories, clustered above 40k patches on CPU), exact, "
                        "clustered (torch, on --device), or a faiss factory string: Flat, IVF4096,PQ64, ... "
                        "(default: the protocol preset's: auto for default, Flat (exact) for open-hbird)")
    g.add_argument("--nprobe", type=positive_int, default=None,
                   help="partitions (IVF lists) searched per query (default: clustered's own, 64 for faiss)")
    g.add_argument("--refine", type=positive_int, default=1,
                   help="approximate indexes: re-rank refine×k candidates exactly (e.g. 10 with IVF-PQ)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="hummingbird", description=(
        "In-context dense scene understanding with a frozen ViT: build a memory bank of patch features "
        "from annotated images, label new images by attention over nearest memory patches."))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("build-memory", help="annotated images → memory bank file",
                       description="Encode a training split into a memory bank (.safetensors).")
    _add_dataset_args(p, "training split (default: trainaug for voc, training for ade20k, train for folder)")
    _add_memory_args(p)
    _add_protocol_preset_arg(p.add_argument_group("protocol"))
    _add_backbone_args(p, from_bank=False)
    _add_feature_args(p)
    _add_runtime_args(p)
    p.add_argument("--out", required=True, help="bank file to write (.safetensors)")

    p = sub.add_parser("evaluate", help="memory bank + labelled split → mIoU JSON and per-class table",
                       description="Evaluate the Hummingbird decoder on a labelled split. Give --bank, or "
                                   "--train-split to build the memory first.")
    _add_dataset_args(p, "evaluation split (default: val for voc, validation for ade20k, val for folder)")
    p.add_argument("--bank", default=None, help="memory bank file from build-memory")
    p.add_argument("--train-split", default=None, help="build the memory from this split instead of --bank")
    p.add_argument("--save-bank", default=None, help="with --train-split: also write the bank here")
    _add_memory_args(p, prefix="train-")
    p.add_argument("--fileset", default=None, help="evaluation " + FILESET_HELP)
    g = p.add_argument_group("protocol")
    _add_protocol_preset_arg(g, from_bank=True)
    g.add_argument("--protocol", choices=("hummingbird", "linear", "overcluster"), default="hummingbird",
                   help="hummingbird: kNN decoder over a memory; linear: linear probe trained on --train-split; "
                        "overcluster: k-means on the evaluation split's patches, clusters matched to classes")
    g.add_argument("--clusters", type=positive_int, nargs="+", default=None,
                   help="overcluster: K values (default: the class count); K > classes uses majority matching")
    g.add_argument("--probe-epochs", type=positive_int, default=20, help="linear: training epochs")
    g.add_argument("--probe-lr", type=positive_float, default=1e-3, help="linear: learning rate")
    _add_backbone_args(p, from_bank=True)
    _add_feature_args(p)
    _add_decoder_args(p)
    _add_runtime_args(p)
    p.add_argument("--out", default="results.json", help="JSON results file")
    p.add_argument("--save-predictions", default=None, metavar="DIR",
                   help="also write every prediction as a palette PNG DIR/<id>.png at the image's own size "
                        "(hummingbird protocol)")
    p.add_argument("--save-overlays", action="store_true",
                   help="with --save-predictions: also DIR/<id>_overlay.png, colours over the image + legend")

    p = sub.add_parser("segment", help="memory bank + images → label PNGs (and colour overlays with legends)",
                       description="Segment images (files or folders) with a memory bank.")
    p.add_argument("--bank", required=True, help="memory bank file from build-memory")
    p.add_argument("--images", nargs="+", required=True, help="image files or folders (the images directly inside)")
    p.add_argument("--out-dir", required=True,
                   help="folder for <name>.png labels, summary.json (and overlays); outputs keep the inputs' "
                        "folders relative to their common folder (a/x.jpg, b/x.jpg → a/x.png, b/x.png); an "
                        "--out-dir where a label map would replace an input image is refused")
    p.add_argument("--overlay", action="store_true", help="also write <name>_overlay.png: colours + legend")
    p.add_argument("--resize-mode", choices=RESIZE_MODES, default=DEFAULT_RESIZE_MODE,
                   help="aspect: short side to the input size, aspect ratio kept, one pass; slide: the same, "
                        "covered by input-size square windows whose patch distributions are averaged; square: "
                        "squashed to input size²")
    p.add_argument("--alpha", type=unit_interval, default=0.5, help="overlay opacity of the label colours, in [0, 1]")
    _add_bank_query_args(p)

    p = sub.add_parser("neighbours", help="a query patch's nearest memory patches as one PNG",
                       description="Show why a patch got its label: the query image (predicted labels at 50 %%, "
                                   "query patch outlined) and its k nearest memory patches as crops of their source "
                                   "images, with labels and similarities. Also writes the same as JSON.")
    p.add_argument("--bank", required=True, help="memory bank file from build-memory")
    p.add_argument("--image", required=True, help="query image")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--patch", help="ROW,COL on the patch grid of the resized input (see --resize-mode)")
    where.add_argument("--point", help="X,Y pixel of the original image")
    p.add_argument("--out", default=None, help="PNG to write (default: <image>_r<row>c<col>_neighbours.png)")
    p.add_argument("--data-root", default=None, help="where the bank's source images are now (default: as built)")
    _add_one_pass_resize_arg(p)
    _add_bank_query_args(p, k=8)

    p = sub.add_parser("viewer", help="static offline HTML page to explore patch neighbours",
                       description="Precompute every patch's neighbours for a few images and write a "
                                   "self-contained page (index.html + data.js + images/): hover or click a "
                                   "patch to see its neighbours; toggle the label map. Works from file://.")
    p.add_argument("--bank", required=True, help="memory bank file from build-memory")
    p.add_argument("--images", nargs="+", required=True, help="query image files or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--max-images", type=positive_int, default=20, help="query images shown at most")
    p.add_argument("--data-root", default=None, help="where the bank's source images are now (default: as built)")
    _add_one_pass_resize_arg(p)
    _add_bank_query_args(p, k=8)

    p = sub.add_parser("check-dataset", help="report every problem of a dataset and its class frequencies",
                       description="Scan images and masks for problems (missing pairs, unreadable files, size "
                                   "mismatches, colour masks, out-of-range values, tiny images) in one pass, "
                                   "and count class pixels; builds nothing. Exit status 1 if problems were found.")
    p.add_argument("path", help="dataset folder")
    p.add_argument("--dataset", choices=DATASET_KINDS, default="folder", help="dataset layout")
    p.add_argument("--split", default="all", help="split to check (voc: train/val/trainaug)")
    _add_num_classes_arg(p)
    p.add_argument("--patch-size", type=positive_int, default=16, help="smallest acceptable image side")
    p.add_argument("--out", default=None, help="also write the report as JSON here")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


# ----------------------------------------------------------------------------- shared steps

def _device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def _protocol(args, bank_meta: dict | None = None) -> Protocol:
    """--protocol-preset, defaulting to the one a bank was built with (a different one is refused when the
    bank's metadata is checked)."""
    from hummingbird.protocols import get_protocol

    return get_protocol(getattr(args, "protocol_preset", None) or (bank_meta or {}).get("protocol_preset", "default"))


def _search(args, bank_meta: dict | None = None) -> str:
    """--index, defaulting to the protocol preset's search (``auto``; ``Flat`` for open-hbird)."""
    return args.index or _protocol(args, bank_meta).search


def _encoder(args, bank_meta: dict | None = None) -> PatchEncoder:
    """Backbone from --backbone/--weights/--layer/--pos-embed and the protocol's normalisation, defaulting
    to what a bank was built with."""
    from hummingbird.backbones import encoder_from_weights_file

    meta = bank_meta or {}
    weights = args.weights
    if weights is None and str(meta.get("weights", "")).startswith("random:"):
        weights = RANDOM_WEIGHTS
    elif weights is None and meta.get("weights_file") and not os.environ.get("HUMMINGBIRD_WEIGHTS"):
        # the checkpoint the bank was built from, where it was or beside the bank; the bank's SHA-256
        # check refuses a file that changed
        found = Path(_bank_relative_file(meta["weights_file"], getattr(args, "bank", None)))
        weights = str(found) if found.is_file() else None
    layer = args.layer if args.layer is not None else meta.get("layer", -1)
    protocol = _protocol(args, meta)
    encoder = encoder_from_weights_file(args.backbone or meta.get("backbone"), weights, layer=layer,
                                        pos_embed=args.pos_embed or meta.get("pos_embed"),
                                        normalisation=protocol.normalisation,
                                        precision=args.precision if args.precision != "auto" else protocol.precision)
    encoder = encoder.to(_device(args.device))
    encoder.active_precision  # an unsupported precision fails here, before any work
    return encoder.compiled() if args.compile else encoder


def _input_size(args, encoder: PatchEncoder, bank_meta: dict | None = None) -> int:
    size = args.input_size or (bank_meta or {}).get("input_size") or DEFAULT_INPUT_SIZE.get(encoder.patch_size, 512)
    encoder.check_input_size(size, size)
    return size


def _fungi_config(args) -> FungiConfig:
    from fungi_dense.features import FungiConfig

    return FungiConfig(objectives=tuple(args.fungi_objectives), layer=args.fungi_layer,
                       latent_dim=args.fungi_latent_dim, head_seed=args.fungi_seed, negatives=args.fungi_negatives,
                       temperature=args.fungi_temperature, projection=args.fungi_projection,
                       projection_dim=args.fungi_dim, projection_seed=args.fungi_seed,
                       token_weight=args.fungi_weights[0], gradient_weight=args.fungi_weights[1],
                       pca_dim=args.fungi_pca_dim, objective_variant=args.fungi_objective_variant,
                       negatives_seed=args.fungi_seed)


def _features(args, encoder: PatchEncoder, size: int, bank_meta: dict | None = None,
              train_split: str | None = None, train_fileset: str | None = None):
    """The feature source: a bank's own kind and settings, else --features and its options. FUNGI
    support memories are built from the training split when their file does not exist yet."""
    from fungi_dense.assemble import fungi_features
    from fungi_dense.features import config_from_metadata
    from hummingbird.features import TokenFeatures
    from hummingbird.transforms import EvalResize

    meta = bank_meta or {}
    kind = meta.get("feature_kind") or getattr(args, "features", "tokens")
    if kind == "tokens":
        return TokenFeatures(encoder)
    config = config_from_metadata(meta) if meta else _fungi_config(args)
    recorded = meta.get("fungi_support") or {}
    training = None
    if train_split is not None:
        training = _dataset(args, train_split, EvalResize(size), train_fileset, min_side=encoder.patch_size,
                            role="memory")
    if args.fungi_support:  # a bank records the absolute path, usable from any working directory
        support = os.path.abspath(args.fungi_support)
    else:
        support = _bank_relative_file(recorded.get("path"), getattr(args, "bank", None))
    return fungi_features(encoder, config, support, size, training=training,
                          support_fraction=getattr(args, "fungi_support_fraction", 0.5),
                          support_index=getattr(args, "fungi_support_index", "Flat"), seed=args.seed,
                          expected_sha256=recorded.get("sha256"), opts=_opts(args))


def _bank_relative_file(recorded: str | None, bank: str | None) -> str | None:
    """A file a bank recorded (FUNGI support memory, weights checkpoint), resolved relative to the bank:
    the recorded path when it is absolute, else relative to the bank's folder, else relative to the
    working directory; failing those, a file of the same name beside the bank (bank and file moved
    together). The caller checks the file's SHA-256 against the bank's record."""
    if recorded is None or bank is None:
        return recorded
    path, bank = Path(recorded), Path(bank).resolve()
    folders = [bank, bank.parent] if bank.is_dir() else [bank.parent]  # a sharded bank is a folder
    candidates = [path] if path.is_absolute() else [*(f / path for f in folders), path]
    candidates += [f / path.name for f in folders]
    return str(next((c for c in candidates if c.is_file()), path))


def _dataset(args, split: str, transform, fileset: str | None = None, num_classes: int | None = None,
             min_side: int = 1, role: str = "evaluation", bank_meta: dict | None = None):
    """``args.dataset`` at ``split``, with the protocol's options for its ``role`` (memory or evaluation)."""
    from hummingbird.datasets import load_dataset

    extra = {"num_classes": num_classes or args.num_classes} if args.dataset in ("folder", "voc") else {}
    extra.update(_protocol(args, bank_meta).dataset_options(args.dataset, role))
    dataset = load_dataset(args.dataset, args.data_root, split, transform, seed=args.seed, fileset=fileset, **extra)
    dataset.min_side = min_side
    return dataset


def _opts(args) -> LoaderOptions:
    from hummingbird.pipeline import LoaderOptions

    return LoaderOptions(batch_size=args.batch_size, num_workers=args.num_workers,
                         device=str(_device(args.device)), progress=not args.no_progress)


def _memory_dataset(args, size: int, split: str, fileset: str | None, patch_size: int):
    """The training images a memory is built from, with the protocol's augmentation (or a plain resize)."""
    from hummingbird.transforms import EvalResize

    transform = EvalResize(size) if args.no_augment else _protocol(args).memory_transform(size)
    return _dataset(args, split, transform, fileset, min_side=patch_size, role="memory")


def _build(args, features, size: int, split: str, fileset: str | None) -> MemoryBank:
    from hummingbird.pipeline import build_memory_bank

    dataset = _memory_dataset(args, size, split, fileset, features.patch_size)
    protocol = _protocol(args)
    print(f"memory: {len(dataset)} images of {dataset.root} [{split}], {dataset.num_classes} classes, "
          f"{features.kind} features ({features.dim} dims), protocol preset {protocol.name}", file=sys.stderr)
    return build_memory_bank(features, dataset, size, memory_size=args.memory_size,
                             augmentation_epochs=args.augmentation_epochs, seed=args.seed, fp16=args.fp16,
                             opts=_opts(args), protocol=protocol)


# ----------------------------------------------------------------------------- commands

def _distributed() -> tuple[int, int]:
    """``(rank, world size)``; under torchrun, joins the process group (gloo on CPU, nccl on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), world


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def cmd_build_memory(args) -> int:
    import torch

    from hummingbird.shards import ShardedBank, build_sharded_bank, write_manifest

    torch.manual_seed(args.seed)
    rank, world = _distributed()
    encoder = _encoder(args)
    size = _input_size(args, encoder)
    split = args.split or DEFAULT_SPLITS[args.dataset][0]
    sharded = world > 1 or args.shard_images is not None or not args.out.endswith(".safetensors")
    if rank == 0 or not sharded:
        features = _features(args, encoder, size, train_split=split, train_fileset=args.fileset)
    _barrier(world)  # a FUNGI support memory is built once, by rank 0, before the others read it
    if rank > 0:
        features = _features(args, encoder, size, train_split=split, train_fileset=args.fileset)
    if not sharded:
        bank = _build(args, features, size, split, args.fileset)
        bank.save(args.out)
        print(f"wrote {args.out}: {len(bank)} patches x {bank.dim} dims, {bank.num_classes} classes")
        return 0
    shard_images = args.shard_images or 256
    dataset = _memory_dataset(args, size, split, args.fileset, features.patch_size)
    names = build_sharded_bank(features, dataset, args.out, size, memory_size=args.memory_size,
                               augmentation_epochs=args.augmentation_epochs, seed=args.seed, fp16=args.fp16,
                               shard_images=shard_images, rank=rank, world=world, opts=_opts(args),
                               protocol=_protocol(args))
    print(f"rank {rank}/{world}: {len(names)} shards in {args.out}", file=sys.stderr)
    _barrier(world)
    if rank == 0:
        write_manifest(args.out, len(dataset), args.augmentation_epochs, shard_images)
        bank = ShardedBank(args.out)
        print(f"wrote {args.out}/: {len(bank)} patches x {bank.dim} dims in {len(bank.shard_files)} shards, "
              f"{bank.num_classes} classes")
    return 0


def cmd_evaluate(args) -> int:
    import torch

    from hummingbird.pipeline import confusion_of, make_decoder, summarise
    from hummingbird.results import format_scores, write_json
    from hummingbird.shards import open_bank
    from hummingbird.transforms import EvalResize

    torch.manual_seed(args.seed)
    if args.protocol != "hummingbird":
        return _evaluate_probe(args)
    if (args.bank is None) == (args.train_split is None):
        raise ConfigError("give exactly one of --bank BANK or --train-split SPLIT")
    if args.save_overlays and not args.save_predictions:
        raise ConfigError("--save-overlays needs --save-predictions DIR")
    rank, world = _distributed()
    if args.bank:
        bank = open_bank(args.bank)
        encoder = _encoder(args, bank.metadata)
        size = _input_size(args, encoder, bank.metadata)
        features = _features(args, encoder, size, bank.metadata)
        bank.check_compatible(dict(features.metadata(), input_size=size,
                                   protocol_preset=_protocol(args, bank.metadata).name), source=args.bank)
    else:
        encoder = _encoder(args)
        size = _input_size(args, encoder)
        features = _features(args, encoder, size, train_split=args.train_split, train_fileset=args.train_fileset)
        bank = _build(args, features, size, args.train_split, args.train_fileset)
        if args.save_bank:
            bank.save(args.save_bank)
    split = args.split or DEFAULT_SPLITS[args.dataset][1]
    protocol = _protocol(args, bank.metadata)
    dataset = _dataset(args, split, EvalResize(size), args.fileset, num_classes=bank.num_classes,
                       min_side=encoder.patch_size, bank_meta=bank.metadata)
    if list(dataset.class_names) != bank.class_names:
        differ = [f"{i}: {a!r} vs {b!r}" for i, (a, b) in enumerate(zip(bank.class_names, dataset.class_names)) if a != b]
        raise BankError(f"{args.bank or 'memory bank'}: built for other classes than {dataset.root} "
                        f"({bank.num_classes} vs {dataset.num_classes} classes{'; ' + ', '.join(differ[:3]) if differ else ''})")
    decoder = make_decoder(bank, k=args.k, temperature=args.temperature, index_spec=_search(args, bank.metadata),
                           nprobe=args.nprobe, seed=args.seed, refine=args.refine, device=_device(args.device))
    started = time.perf_counter()
    if args.save_predictions:
        from hummingbird.palettes import palette_for
        from hummingbird.predictions import evaluate_and_save

        confusion = evaluate_and_save(features, decoder, dataset, args.save_predictions,
                                      palette_for(args.dataset, dataset.num_classes), _opts(args),
                                      indices=range(rank, len(dataset), world), overlay=args.save_overlays)
    else:
        confusion = confusion_of(features, decoder, dataset, _opts(args), indices=range(rank, len(dataset), world))
    if world > 1:  # each rank evaluated every world-th image; rank 0 reports the summed matrix
        import torch.distributed as dist

        dist.all_reduce(confusion.matrix, op=dist.ReduceOp.SUM)
        if rank > 0:
            return 0
    result = summarise(confusion.matrix, list(dataset.class_names), headline=protocol.headline_metric)
    result.update(num_images=len(dataset), seconds=round(time.perf_counter() - started, 3), processes=world)
    payload = {
        "config": {"protocol": "hummingbird", "protocol_preset": protocol.name, "dataset": args.dataset,
                   "data_root": str(dataset.root),
                   "split": dataset.split, "fileset": args.fileset, "k": args.k, "temperature": args.temperature,
                   "index": _search(args, bank.metadata), "search": getattr(decoder.index, "spec", None),
                   "nprobe": args.nprobe, "input_size": size, "seed": args.seed,
                   "precision": encoder.active_precision, "compile": args.compile},
        "bank": {k: v for k, v in bank.metadata.items() if k != "image_ids"},
        **result,
    }
    write_json(args.out, payload)
    print(format_scores(result))
    print(f"\nwrote {args.out}")
    return 0


def _evaluate_probe(args) -> int:
    """``--protocol linear`` (probe trained on --train-split) or ``overcluster`` (k-means on the split)."""
    from hummingbird import probes

    if args.save_predictions:
        raise ConfigError(f"--save-predictions works with --protocol hummingbird, not {args.protocol}")
    from hummingbird.results import format_scores, write_json
    from hummingbird.transforms import EvalResize

    if args.bank:
        raise ConfigError(f"--protocol {args.protocol} works on features, not on a memory bank; drop --bank")
    encoder = _encoder(args)
    size = _input_size(args, encoder)
    train_split = args.train_split or DEFAULT_SPLITS[args.dataset][0]
    features = _features(args, encoder, size, train_split=train_split, train_fileset=args.train_fileset)
    split = args.split or DEFAULT_SPLITS[args.dataset][1]
    dataset = _dataset(args, split, EvalResize(size), args.fileset, min_side=encoder.patch_size)
    opts = _opts(args)
    val_feats, val_masks = probes.encode_split(features, dataset, opts, f"encode {split}")
    names = list(dataset.class_names)
    config = {"protocol": args.protocol, "dataset": args.dataset, "data_root": str(dataset.root),
              "split": dataset.split, "input_size": size, "seed": args.seed, **features.metadata()}
    if args.protocol == "linear":
        train = _dataset(args, train_split, EvalResize(size), args.train_fileset, min_side=encoder.patch_size)
        train_feats, train_masks = probes.encode_split(features, train, opts, f"encode {train_split}")
        probe = probes.train_linear_probe(train_feats, train_masks, len(names), epochs=args.probe_epochs,
                                          lr=args.probe_lr, seed=args.seed, progress=opts.progress)
        result = probes.linear_probe_scores(probe, val_feats, val_masks, names)
        config.update(train_split=train_split, train_images=len(train), epochs=args.probe_epochs, lr=args.probe_lr)
        payload = {"config": config, **result}
        print(format_scores(result))
    else:
        per_k = {}
        for k in args.clusters or [len(names)]:
            clusters = probes.cluster_patches(val_feats, k, seed=args.seed)
            per_k[str(k)] = probes.overcluster_scores(clusters, val_masks, k, names)
            print(f"K={k} ({per_k[str(k)]['matching']} matching): mIoU {100 * per_k[str(k)]['mIoU']:.2f}")
        payload = {"config": config, "mIoU": per_k[str((args.clusters or [len(names)])[0])]["mIoU"], "per_k": per_k}
    write_json(args.out, payload)
    print(f"\nwrote {args.out}")
    return 0


@dataclass
class BankPipeline:
    """A bank and everything needed to query it, as the bank-reading commands set it up."""

    bank: MemoryBank
    encoder: PatchEncoder
    features: object
    size: int
    decoder: object
    palette: np.ndarray


def _bank_pipeline(args) -> BankPipeline:
    from hummingbird.palettes import palette_for
    from hummingbird.pipeline import make_decoder
    from hummingbird.shards import ShardedBank, open_bank

    bank = open_bank(args.bank)
    if isinstance(bank, ShardedBank):
        bank = bank.to_memory()
    encoder = _encoder(args, bank.metadata)
    size = _input_size(args, encoder, bank.metadata)
    features = _features(args, encoder, size, bank.metadata)
    bank.check_compatible(dict(features.metadata(), input_size=size), source=args.bank)  # its own preset
    decoder = make_decoder(bank, k=args.k, temperature=args.temperature, index_spec=_search(args, bank.metadata),
                           nprobe=args.nprobe, device=_device(args.device))
    palette = palette_for(bank.metadata.get("dataset", "folder"), bank.num_classes)
    return BankPipeline(bank, encoder, features, size, decoder, palette)


def _read_image(path: Path, patch_size: int) -> Image.Image:
    """An input image as 8-bit RGB (16-bit and float images scaled, see :mod:`hummingbird.imageio`)."""
    from hummingbird.imageio import read_rgb

    image = read_rgb(path, ConfigError)
    if min(image.width, image.height) < patch_size:
        raise ConfigError(f"{path}: image is {image.width}x{image.height}, smaller than one {patch_size}-px patch")
    return image


def cmd_segment(args) -> int:
    import numpy as np
    from PIL import Image
    from tqdm.auto import tqdm

    from hummingbird import render
    from hummingbird.atomic import atomic_path
    from hummingbird.outputs import image_files, plan_label_outputs
    from hummingbird.results import write_json
    from hummingbird.tiling import segment_image

    plans = plan_label_outputs(image_files(args.images), args.out_dir, overlay=args.overlay)  # refuse before work
    pipe = _bank_pipeline(args)
    names = pipe.bank.class_names
    out_dir = Path(args.out_dir)
    summary, outputs = {}, {}
    for plan in tqdm(plans, desc="segment", disable=args.no_progress, unit="img"):
        image = _read_image(plan.image, pipe.encoder.patch_size)
        labels = segment_image(pipe.features, pipe.decoder, image, pipe.size, args.resize_mode,
                               batch_size=args.batch_size, image_id=plan.image.stem).astype(np.uint8)
        label_img = Image.fromarray(labels, mode="P")
        label_img.putpalette(pipe.palette.flatten().tolist())
        with atomic_path(plan.labels) as tmp:
            label_img.save(tmp, format="PNG")
        if args.overlay:
            picture = render.with_legend(render.overlay(image, labels, pipe.palette, args.alpha), labels, names,
                                         pipe.palette)
            with atomic_path(plan.overlay) as tmp:
                picture.save(tmp, format="PNG")
        counts = np.bincount(labels.ravel(), minlength=pipe.bank.num_classes)
        summary[plan.key] = {names[c]: round(float(counts[c] / labels.size), 4) for c in np.nonzero(counts)[0]}
        outputs[plan.key] = plan.labels.relative_to(out_dir).as_posix()
    write_json(out_dir / "summary.json", {"bank": args.bank, "input_size": pipe.size, "resize_mode": args.resize_mode,
                                          "class_fractions": summary, "label_maps": outputs})
    print(f"wrote {len(summary)} label maps{' and overlays' if args.overlay else ''} for {len(plans)} images "
          f"to {out_dir}")
    return 0


def _parse_pair(text: str, option: str) -> tuple[int, int]:
    try:
        a, b = (int(float(v)) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected two numbers separated by a comma") from None
    return a, b


def cmd_neighbours(args) -> int:
    from hummingbird import render
    from hummingbird.geometry import patch_box_in_source, point_to_patch
    from hummingbird.neighbours import SourceImages, describe_neighbours, query_image
    from hummingbird.results import write_json

    pipe = _bank_pipeline(args)
    image = _read_image(Path(args.image), pipe.encoder.patch_size)
    result = query_image(pipe.features, pipe.decoder, image, pipe.size, args.resize_mode)
    h, w = result.grid
    if args.patch:
        row, col = _parse_pair(args.patch, "--patch")
    else:
        x, y = _parse_pair(args.point, "--point")
        try:
            row, col = point_to_patch(x, y, image.size, pipe.encoder.patch_size, result.input_shape)
        except ValueError as exc:
            raise ConfigError(f"--point: {exc}") from None
    if not (0 <= row < h and 0 <= col < w):
        raise ConfigError(f"--patch {row},{col} is outside the {h}x{w} patch grid")
    neighbours = describe_neighbours(pipe.bank, result.rows[row, col], result.similarities[row, col])
    sources = SourceImages(pipe.bank, args.data_root)
    query_box = patch_box_in_source([0, 0, image.height, image.width, 0], row, col, pipe.encoder.patch_size,
                                    result.input_shape)
    centre_x = min(int((query_box[0] + query_box[2]) / 2), image.width - 1)
    centre_y = min(int((query_box[1] + query_box[3]) / 2), image.height - 1)
    predicted = pipe.bank.class_names[int(result.labels[centre_y, centre_x])]
    title = f"{Path(args.image).name} patch ({row}, {col}): predicted {predicted}; {len(neighbours)} nearest memory patches"
    picture = render.neighbour_grid(image, result.labels, query_box, neighbours, sources, pipe.palette, title)
    out = Path(args.out or f"{Path(args.image).stem}_r{row}c{col}_neighbours.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out)
    write_json(out.with_suffix(".json"), {"image": str(args.image), "patch": [row, col], "query_box": query_box,
                                          "neighbours": [n.to_dict() for n in neighbours]})
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


def cmd_viewer(args) -> int:
    from tqdm.auto import tqdm

    from hummingbird.neighbours import SourceImages, query_image
    from hummingbird.outputs import image_files
    from hummingbird.viewer import build_viewer_data, write_viewer

    pipe = _bank_pipeline(args)
    sources = SourceImages(pipe.bank, args.data_root)
    files = image_files(args.images)[: args.max_images]
    queries = [(path.name, query_image(pipe.features, pipe.decoder, _read_image(path, pipe.encoder.patch_size),
                                       pipe.size, args.resize_mode))
               for path in tqdm(files, desc="viewer", disable=args.no_progress, unit="img")]
    out_dir = Path(args.out)
    page = write_viewer(out_dir, build_viewer_data(pipe.bank, queries, sources, pipe.palette, out_dir))
    print(f"wrote {page} ({len(queries)} images); open it in a browser, no server needed")
    return 0


def cmd_check_dataset(args) -> int:
    from hummingbird.results import write_json
    from hummingbird.validation import scan_dataset

    report = scan_dataset(args.dataset, args.path, args.split, num_classes=args.num_classes,
                          patch_size=args.patch_size, progress=not args.no_progress)
    print(report.format())
    if args.out:
        write_json(args.out, report.to_dict())
    return 0 if report.ok else 1


COMMANDS = {"build-memory": cmd_build_memory, "evaluate": cmd_evaluate, "segment": cmd_segment,
            "neighbours": cmd_neighbours, "viewer": cmd_viewer, "check-dataset": cmd_check_dataset}


def _user_message(exc: Exception) -> str:
    """The error's own one-line message, also when a DataLoader worker re-raised it with its traceback."""
    text = str(exc)
    marker = f"{type(exc).__name__}: "
    if "Original Traceback" in text and marker in text:
        return text.rsplit(marker, 1)[1].strip()
    return text


@contextmanager
def _output_locks(args) -> Iterator[None]:
    """Hold the lock of each bank this command writes (build-memory --out, evaluate --save-bank), so that a
    second process writing the same output is refused instead of silently overwriting it. Under torchrun
    rank 0 holds it for all ranks."""
    from hummingbird.locking import exclusive_output

    outputs = {"build-memory": ["out"], "evaluate": ["save_bank"]}.get(args.command, [])
    with ExitStack() as stack:
        if int(os.environ.get("RANK", "0")) == 0:
            for dest in outputs:
                if getattr(args, dest, None):
                    stack.enter_context(exclusive_output(getattr(args, dest), "--" + dest.replace("_", "-")))
        yield


class Terminated(Exception):
    """SIGTERM arrived; raised so that clean-up (temporary files) runs before exiting."""


def _raise_terminated(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if threading.current_thread() is threading.main_thread() else None
    try:
        with _output_locks(args):
            return COMMANDS[args.command](args)
    except HummingbirdError as exc:
        print(f"hummingbird {args.command}: error: {_user_message(exc)}", file=sys.stderr)
        return 2
    except (Terminated, KeyboardInterrupt):
        print(f"hummingbird {args.command}: interrupted; files written so far are complete, nothing partial was "
              f"left", file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
