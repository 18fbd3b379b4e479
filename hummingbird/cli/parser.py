"""The ``hummingbird`` command line's argument parser: every command, option, help text and default.

Imports no heavy library (``--help`` answers at once). The commands themselves are in :mod:`hummingbird.cli.main`;
the defaults shared with the Python API are declared in :mod:`hummingbird.settings`.
"""

from __future__ import annotations

import argparse

from fungi_dense.variants import VARIANTS
from hummingbird import __version__
from hummingbird.catalog import (
    DATASET_KINDS,
    DEFAULT_BACKBONE,
    DEFAULT_RESIZE_MODE,
    POS_EMBED_RULES,
    PRESET_NAMES,
    PROTOCOL_PRESETS,
    RANDOM_WEIGHTS,
    RESIZE_MODES,
)
from hummingbird.cli.argtypes import (
    fraction,
    int_at_least,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    unit_interval,
)
from hummingbird.cli.depth import TASK_DATASET_KINDS, add_task_args
from hummingbird.cli.label import add_label_parser
from hummingbird.cli.prepare import add_prepare_data_parser
from hummingbird.cli.video import add_propagate_parser
from hummingbird.datasets.cache import DATA_ENV
from hummingbird.datasets.prepare.archives import PREPARED_DATASETS
from hummingbird.models.precision import PRECISIONS
from hummingbird.settings import SEARCH_DEFAULTS, FungiOptions

FUNGI = FungiOptions()  # the FUNGI defaults

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
                        f"official weights file name, else {DEFAULT_BACKBONE} (with timm's pretrained or random "
                        "weights)")
    g.add_argument("--weights", default=None,
                   help="local checkpoint (official DINO/DINOv2/DINOv3/MAE/CLIP .pth, timm .safetensors); "
                        f"'{RANDOM_WEIGHTS}' for a seeded random init; default: "
                        + ("the bank's own file (where it was built, or beside the bank), else " if from_bank else "")
                        + "$HUMMINGBIRD_WEIGHTS, else timm's pretrained weights (local cache, else download when online)")
    layers = g.add_mutually_exclusive_group()
    layers.add_argument("--layer", type=int, default=None,
                        help="block whose tokens are used, negative counts from the end (default: the last"
                             + (", or the bank's)" if from_bank else ")"))
    layers.add_argument("--layers", dest="layer", type=int, nargs="+", metavar="LAYER",
                        help="several blocks whose tokens are concatenated in this order (e.g. -1 -4); recorded in "
                             "the bank")
    g.add_argument("--pos-embed", choices=POS_EMBED_RULES, default=None,
                   help="resampling of learned position embeddings to other input sizes: official (the DINO/DINOv2 "
                        "code's bicubic by scale (n+0.1)/M, behind their published numbers) or timm (antialiased "
                        "bicubic to size); default: official for DINO and DINOv2 presets, else timm. RoPE and NaFlex "
                        "backbones (DINOv3, PE, SigLIP 2 NaFlex, C-RADIO) use their own rule (hummingbird backbones)"
                        + ("; a bank's own" if from_bank else ""))


def _add_feature_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("features (a bank's own settings are used when loading one)")
    g.add_argument("--features", choices=("tokens", "fungi"), default="tokens",
                   help="plain patch tokens, or dense FUNGI (tokens + projected self-supervised gradients)")
    g.add_argument("--fungi-support", default=None,
                   help="FUNGI support memory file: read if it exists, else built from the training split")
    g.add_argument("--fungi-objectives", nargs="+", default=list(FUNGI.objectives), choices=("infonce", "kl"),
                   help="self-supervised losses whose gradients are used")
    g.add_argument("--fungi-projection", choices=("fast", "dense"), default=FUNGI.projection,
                   help="fast: Khatri-Rao sketch, O(D k) per patch; dense: the paper's ±1 matrix, O(D² k)")
    g.add_argument("--fungi-dim", type=positive_int, default=None,
                   help="projected gradient size (default: embedding size)")
    g.add_argument("--fungi-latent-dim", type=positive_int, default=FUNGI.latent_dim, help="random head output size")
    g.add_argument("--fungi-negatives", type=positive_int, default=FUNGI.negatives, help="InfoNCE negatives per patch")
    g.add_argument("--fungi-temperature", type=positive_float, default=FUNGI.temperature, help="InfoNCE temperature")
    g.add_argument("--fungi-support-fraction", type=fraction, default=FUNGI.support_fraction,
                   help="share of support patches kept, in (0, 1]")
    g.add_argument("--fungi-support-index", default=FUNGI.support_index, help="faiss factory string for the support search")
    g.add_argument("--fungi-layer", default=FUNGI.layer, help="differentiated linear layer")
    g.add_argument("--fungi-objective-variant", choices=list(VARIANTS), default=FUNGI.objective_variant,
                   help=f"form of the InfoNCE objective (default: {FUNGI.objective_variant}): "
                        + "; ".join(f"{v.name}: {v.summary}" for v in VARIANTS.values()))
    g.add_argument("--fungi-seed", type=non_negative_int, default=FUNGI.seed,
                   help="seed of the head, the projection and the per-image negative subsampling")
    g.add_argument("--fungi-weights", type=non_negative_float, nargs=2, default=FUNGI.weights,
                   metavar=("TOKENS", "GRADIENTS"), help="weights of the normalised parts before the final "
                                                         "normalisation")
    g.add_argument("--fungi-pca-dim", type=positive_int, default=None,
                   help="PCA of the FUNGI feature to this size (default: no PCA)")


def _add_one_pass_resize_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resize-mode", choices=("aspect", "square"),
                   default=DEFAULT_RESIZE_MODE if DEFAULT_RESIZE_MODE != "slide" else "aspect",
                   help="aspect: short side to the input size, aspect ratio kept (a non-square patch grid); "
                        "square: squashed to input size² (as segment --resize-mode)")


def _add_bank_query_args(p: argparse.ArgumentParser, shown: int | None = None) -> None:
    """Backbone, decoder and runtime options of a command that queries a bank; ``shown``: the default number of
    neighbours shown (neighbours, viewer), whose ``--k`` is that number while ``--decoder-k`` is the decoder's."""
    _add_backbone_args(p, from_bank=True)
    p.add_argument("--fungi-support", default=None, help="FUNGI banks: support memory file (default: the bank's)")
    if shown is not None:
        p.add_argument("--k", dest="show", type=positive_int, default=shown, metavar="N",
                       help="nearest memory patches shown per query patch (the label map drawn is segment's, "
                            "with the decoder's --decoder-k)")
    _add_decoder_args(p, k_flag="--decoder-k" if shown is not None else "--k")
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


def _add_dataset_args(p: argparse.ArgumentParser, split_help: str, max_images_help: str) -> None:
    g = p.add_argument_group("dataset")
    g.add_argument("--dataset", choices=TASK_DATASET_KINDS, required=True,
                   help="dataset layout (see the docs' Data preparation; RGB-D layouts nyu and folder: --task depth; "
                        "davis: --task video)")
    g.add_argument("--data-root", default=None,
                   help=f"dataset folder (see the docs' Data preparation for layouts); default: the dataset in the "
                        f"data cache (${DATA_ENV}, else ~/.cache/hummingbird/data), prepared there first when absent "
                        f"({', '.join(PREPARED_DATASETS)})")
    g.add_argument("--split", default=None, help=split_help)
    g.add_argument("--images", dest="data_root", metavar="DIR", help="coco-json, labelme: the image folder (= --data-root)")
    g.add_argument("--annotations", default=None, metavar="FILE.json",
                   help="coco-json: the COCO JSON (polygons or RLE; categories are the classes); sets --split")
    g.add_argument("--max-images", type=positive_int, default=None, metavar="N", help=max_images_help)
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


PAPER_MEMORY_SIZE = 102_400  # evaluate's memory when it builds one: 1024·10²


def _memory_size(text: str) -> int | None:
    """``--memory-size``: a number of patches, or ``all`` (every labelled patch)."""
    return None if text == "all" else positive_int(text)


_memory_size.__name__ = "integer >= 1 or 'all'"


def _add_memory_args(p: argparse.ArgumentParser, prefix: str = "", memory_size: int | None = None) -> None:
    g = p.add_argument_group("memory bank")
    g.add_argument(f"--{prefix}fileset", default=None, help="training " + FILESET_HELP)
    shown = "all: every labelled patch" if memory_size is None else (
        f"{memory_size}: 1024·10², the Hummingbird paper's first memory size; all: every labelled patch")
    g.add_argument("--memory-size", type=_memory_size, default=memory_size,
                   help="patches kept per bank, the same number from each image, chosen by the protocol's "
                        f"selection, or all (default: {shown})")
    g.add_argument("--augmentation-epochs", type=positive_int, default=1, help="augmented passes over the images")
    g.add_argument("--no-augment", action="store_true",
                   help="plain resize instead of the protocol's augmentation (default: crop/flip/jitter; "
                        "open-hbird: jitter and crop)")
    g.add_argument("--fp16", action="store_true", help="store features as float16")
    g.add_argument("--shard-images", type=positive_int, default=None,
                   help="write a sharded bank folder (--out DIR), one shard per this many images (default "
                        "256); resumable; implied by an --out without .safetensors and by torchrun")


def _add_decoder_args(p: argparse.ArgumentParser, k_flag: str = "--k") -> None:
    g = p.add_argument_group("decoder")
    g.add_argument(k_flag, dest="k", type=positive_int, default=SEARCH_DEFAULTS.k, metavar="K",
                   help="neighbours per patch the decoder's label distribution is computed from"
                        + (" (segment's --k)" if k_flag != "--k" else ""))
    g.add_argument("--temperature", type=positive_float, default=SEARCH_DEFAULTS.temperature, help="softmax temperature τ > 0")
    g.add_argument("--index", default=None,
                   help="auto (exact search for small memories, clustered above 40k patches on CPU), exact, "
                        "clustered (torch, on --device), or a faiss factory string: Flat, IVF4096,PQ64, ... "
                        "(default: the protocol preset's: auto for default, Flat (exact) for open-hbird)")
    g.add_argument("--nprobe", type=positive_int, default=None,
                   help="partitions (IVF lists) searched per query (default: clustered's own, 64 for faiss)")
    g.add_argument("--refine", type=positive_int, default=SEARCH_DEFAULTS.refine,
                   help="approximate indexes: re-rank refine×k candidates exactly (e.g. 10 with IVF-PQ)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="hummingbird", description=(
        "In-context dense scene understanding with a frozen ViT: build a memory bank of patch features "
        "from annotated images, label new images by attention over nearest memory patches."))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("build-memory", help="annotated images → memory bank file",
                       description="Encode a training split into a memory bank (.safetensors).")
    _add_dataset_args(p, "training split (default: trainaug for voc, training for ade20k, train for folder)",
                      "use the split's first N images only, for a quick trial (default: all)")
    _add_memory_args(p)
    _add_protocol_preset_arg(p.add_argument_group("protocol"))
    _add_backbone_args(p, from_bank=False)
    _add_feature_args(p)
    _add_runtime_args(p)
    p.add_argument("--out", required=True, help="bank file to write (.safetensors)")
    add_task_args(p, "build-memory")

    p = sub.add_parser("evaluate", help="memory bank + labelled split → mIoU JSON and per-class table",
                       description="Evaluate the Hummingbird decoder on a labelled split. Give --bank, or the memory "
                                   "is built first from --train-split (default: the dataset's training split).")
    _add_dataset_args(p, "evaluation split (default: val for voc, validation for ade20k, val for folder)",
                      "use the first N images of each split (evaluation, and training when the memory is built) "
                      "only, for a quick trial (default: all)")
    p.add_argument("--bank", default=None, help="memory bank file from build-memory")
    p.add_argument("--train-split", default=None,
                   help="build the memory from this split instead of reading --bank (default without --bank: "
                        "trainaug for voc, training for ade20k, train for the others)")
    saving = p.add_mutually_exclusive_group()
    saving.add_argument("--save-bank", default=None,
                        help="when the memory is built (no --bank): where it is written for reuse with --bank "
                             "(default: beside --out, <out>.bank.safetensors)")
    saving.add_argument("--no-save-bank", action="store_true",
                        help="when the memory is built: do not keep it (it is written beside --out otherwise)")
    _add_memory_args(p, prefix="train-", memory_size=PAPER_MEMORY_SIZE)
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
    p.add_argument("--plot", action="store_true",
                   help="also write <out>_per_class.png/.svg (IoU bars) and <out>_confusion.png/.svg (heat map) "
                        "beside the JSON (hummingbird protocol)")
    add_task_args(p, "evaluate")

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
    add_task_args(p, "segment")

    p = sub.add_parser("neighbours", help="a query patch's nearest memory patches as one PNG",
                       description="Show why a patch got its label: the query image (predicted labels at 50 %, "
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
    _add_bank_query_args(p, shown=8)

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
    _add_bank_query_args(p, shown=8)

    add_prepare_data_parser(sub)
    add_propagate_parser(sub)
    add_label_parser(sub)

    p = sub.add_parser("backbones", help="list the backbone presets",
                       description="Every backbone preset: patch size, feature width, depth, default input size, "
                                   "position rule and where the weights come from (--wide: also the timm model, "
                                   "normalisation and the weights' URLs). Any other timm ViT works as --backbone "
                                   "timm:<model name>.")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON instead of a table (every field, weights URLs)")
    out.add_argument("--wide", action="store_true",
                     help="the full table: timm model, normalisation, where the official weights are published "
                          "(wider than 100 columns)")

    p = sub.add_parser("check-dataset", help="report every problem of a dataset and its class frequencies",
                       description="Scan images and masks for problems (missing pairs, unreadable files, size "
                                   "mismatches, colour masks, out-of-range values, tiny images) in one pass, "
                                   "and count class pixels; builds nothing. Exit status 1 if problems were found.")
    p.add_argument("path", nargs="?", default=None,
                   help="dataset folder (default: the --dataset's folder in the data cache, prepared there first "
                        "when absent)")
    p.add_argument("--dataset", choices=DATASET_KINDS, default="folder", help="dataset layout")
    p.add_argument("--split", default="all", help="split to check (voc: train/val/trainaug)")
    _add_num_classes_arg(p)
    p.add_argument("--patch-size", type=positive_int, default=16, help="smallest acceptable image side")
    p.add_argument("--out", default=None, help="also write the report as JSON here")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser
