"""Settings of a pipeline, and their resolution against a memory bank.

A pipeline is a backbone (``PatchEncoder``), a feature source (tokens or dense FUNGI), an input size, a
protocol preset and a device. :class:`Settings` holds what a user asked for (``None``: not asked);
:func:`resolve_pipeline` fills the rest from a bank's metadata (its backbone, weights file, layer,
position rule, input size, preset, FUNGI support) and then from the defaults. The command line and
:class:`hummingbird.Segmenter` both go through here, so a bank is read the same way everywhere.

This module imports no heavy library at import time (the command line's ``--help`` reads its defaults).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from fungi_dense.variants import DEFAULT_VARIANT
from hummingbird.catalog import DEFAULT_K, DEFAULT_TEMPERATURE, RANDOM_WEIGHTS
from hummingbird.errors import ConfigError, option

if TYPE_CHECKING:
    import torch

    from fungi_dense.features import FungiConfig
    from hummingbird.datasets.loader import LoaderOptions
    from hummingbird.evaluation.protocols import Protocol
    from hummingbird.models.backbones import PatchEncoder


@dataclass
class FungiOptions:
    """Dense FUNGI feature settings (``--fungi-*``); a bank's own record wins when loading one."""

    support: str | None = None  # support memory file: read if it exists, else built from the training split
    objectives: tuple[str, ...] = ("infonce",)
    projection: str = "fast"
    dim: int | None = None
    latent_dim: int = 96
    negatives: int = 2
    temperature: float = 0.07
    support_fraction: float = 0.5
    support_index: str = "Flat"
    layer: str = "blocks.-1.attn.proj"
    objective_variant: str = DEFAULT_VARIANT
    seed: int = 0
    weights: tuple[float, float] = (1.0, 1.0)
    pca_dim: int | None = None

    def config(self) -> FungiConfig:
        from fungi_dense.features import FungiConfig

        return FungiConfig(objectives=tuple(self.objectives), layer=self.layer, latent_dim=self.latent_dim,
                           head_seed=self.seed, negatives=self.negatives, temperature=self.temperature,
                           projection=self.projection, projection_dim=self.dim, projection_seed=self.seed,
                           token_weight=self.weights[0], gradient_weight=self.weights[1], pca_dim=self.pca_dim,
                           objective_variant=self.objective_variant, negatives_seed=self.seed)


@dataclass
class Settings:
    """What a user asked for; ``None`` fields are taken from a bank, then from the defaults.

    ``options`` are passed through to the backbone loader (:func:`hummingbird.models.backbones.load_backbone`).
    ``precision`` is the backbone's arithmetic (``auto``: the processor's native bf16 where it has it,
    the protocol preset's precision where the preset fixes one; :mod:`hummingbird.models.precision`);
    ``compile`` runs the backbone through ``torch.compile``. ``progress`` shows progress bars and notes
    (what is being built, an index trained once), ``verbose`` the notes alone; both off by default: library
    calls print nothing unless asked (the command line turns the notes on).
    """

    backbone: str | None = None
    weights: str | None = None
    layer: int | list[int] | None = None  # several blocks: their tokens concatenated
    pos_embed: str | None = None
    input_size: int | None = None
    protocol_preset: str | None = None
    features: str = "tokens"
    fungi: FungiOptions = field(default_factory=FungiOptions)
    device: str = "auto"
    batch_size: int = 8
    num_workers: int = 0
    seed: int = 0
    progress: bool = False
    verbose: bool = False
    precision: str = "auto"
    compile: bool = False
    options: dict = field(default_factory=dict)

    @property
    def notes(self) -> bool:
        """Whether notes are printed (on stderr): ``verbose`` or ``progress``."""
        return self.verbose or self.progress

    @classmethod
    def from_keywords(cls, **keywords) -> "Settings":
        """Settings from keyword arguments: its own fields, ``fungi`` (a :class:`FungiOptions` or a
        dict), ``fungi_<field>`` for single FUNGI fields, ``options`` (a dict passed to the backbone loader,
        e.g. ``{"depth": 2}``); any other name is refused (:func:`check_keywords`)."""
        check_keywords(keywords, fields_of(cls) | fungi_keywords())
        fungi = keywords.pop("fungi", None) or FungiOptions()
        fungi = FungiOptions(**fungi) if isinstance(fungi, dict) else fungi
        for key in [k for k in keywords if k in fungi_keywords() - {"fungi"}]:
            setattr(fungi, key[6:], keywords.pop(key))
        options = dict(keywords.pop("options", None) or {})
        return cls(**keywords, fungi=fungi, options=options)


def fields_of(cls) -> set[str]:
    return {f.name for f in fields(cls)}


def fungi_keywords() -> set[str]:
    """``fungi`` and ``fungi_<field>`` for each :class:`FungiOptions` field."""
    return {"fungi"} | {f"fungi_{f.name}" for f in fields(FungiOptions)}


def check_keywords(keywords: dict, known: set[str], call: str = "") -> None:
    """Refuse keyword arguments not in ``known``, naming the closest known one (``backbon=``: did you mean
    ``backbone=``?); ``call`` names the function in the message."""
    unknown = [k for k in keywords if k not in known]
    if not unknown:
        return
    key = unknown[0]
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}=?" if close else f"known: {', '.join(sorted(known))}"
    others = f" (and {', '.join(k + '=' for k in unknown[1:])})" if len(unknown) > 1 else ""
    raise ConfigError(f"{call + ': ' if call else ''}unknown keyword argument {key}={others}; {hint}")


@dataclass
class SearchOptions:
    """The decoder: ``k`` neighbours, softmax temperature ``τ`` and the neighbour search (``index``:
    ``None`` follows the protocol preset; ``nprobe``: partitions visited; ``refine``: re-ranking)."""

    k: int = DEFAULT_K
    temperature: float = DEFAULT_TEMPERATURE
    index: str | None = None
    nprobe: int | None = None
    refine: int = 1


SEARCH_DEFAULTS = SearchOptions()


def keyword_names() -> set[str]:
    """Every keyword :func:`split_keywords` takes: :class:`Settings`' and :class:`SearchOptions`' fields and
    the FUNGI ones."""
    return fields_of(Settings) | fields_of(SearchOptions) | fungi_keywords()


def split_keywords(keywords: dict, call: str = "", own: set[str] | frozenset = frozenset()
                   ) -> tuple[Settings, SearchOptions]:
    """Keyword arguments → the pipeline's :class:`Settings` and the decoder's :class:`SearchOptions`. An
    unknown name is refused, naming ``call`` and the closest of the known names and ``own`` (the calling
    function's own parameters)."""
    check_keywords(keywords, keyword_names() | set(own), call)
    search_fields = fields_of(SearchOptions)
    search = SearchOptions(**{k: v for k, v in keywords.items() if k in search_fields})
    return Settings.from_keywords(**{k: v for k, v in keywords.items() if k not in search_fields}), search


@dataclass
class Pipeline:
    """A resolved pipeline: what turns images into query features, at which size, under which protocol."""

    encoder: PatchEncoder
    features: object  # TokenFeatures or FungiFeatures
    size: int
    protocol: Protocol
    device: torch.device
    loader: LoaderOptions
    settings: Settings

    @property
    def patch_size(self) -> int:
        return self.encoder.patch_size

    def metadata(self) -> dict:
        """The fields a bank queried by this pipeline must agree on."""
        return dict(self.features.metadata(), input_size=self.size, protocol_preset=self.protocol.name)


def device_for(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``, ..."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{option('device', name)}: CUDA is not available on this machine")
    return torch.device(name)


def protocol_for(preset: str | None, bank_meta: dict | None = None) -> Protocol:
    """The protocol preset asked for, else the one a bank was built with, else ``default``."""
    from hummingbird.evaluation.protocols import get_protocol

    return get_protocol(preset or (bank_meta or {}).get("protocol_preset", "default"))


def search_for(index: str | None, protocol: Protocol) -> str:
    """The neighbour search asked for, else the protocol preset's (``auto``; ``Flat`` for open-hbird)."""
    return index or protocol.search


def bank_relative_file(recorded: str | None, bank: str | Path | None) -> str | None:
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


def weights_for(weights: str | None, bank_meta: dict, bank_path: str | Path | None) -> str | None:
    """The weights asked for, else the bank's: random for a randomly initialised bank, its checkpoint
    where it was or beside the bank (unless ``$HUMMINGBIRD_WEIGHTS`` names one); the bank's SHA-256
    check refuses a file that changed."""
    if weights is not None:
        return weights
    if str(bank_meta.get("weights", "")).startswith("random:"):
        return RANDOM_WEIGHTS
    if bank_meta.get("weights_file") and not os.environ.get("HUMMINGBIRD_WEIGHTS"):
        found = Path(bank_relative_file(bank_meta["weights_file"], bank_path))
        return str(found) if found.is_file() else None
    return None


def encoder_for(settings: Settings, bank_meta: dict | None = None, bank_path: str | Path | None = None,
                protocol: Protocol | None = None) -> PatchEncoder:
    """The backbone asked for, defaulting to what a bank was built with, on the settings' device."""
    from hummingbird.models.backbones import encoder_from_weights_file

    meta = bank_meta or {}
    protocol = protocol or protocol_for(settings.protocol_preset, meta)
    layer = settings.layer if settings.layer is not None else meta.get("layer", -1)
    encoder = encoder_from_weights_file(settings.backbone or meta.get("backbone"),
                                        weights_for(settings.weights, meta, bank_path), layer=layer,
                                        pos_embed=settings.pos_embed or meta.get("pos_embed"),
                                        normalisation=protocol.normalisation,
                                        precision=protocol.precision if settings.precision == "auto" else settings.precision,
                                        **settings.options)
    encoder = encoder.to(device_for(settings.device))
    encoder.active_precision  # an unsupported precision fails here, before any work
    return encoder.compiled() if settings.compile else encoder


def input_size_for(size: int | None, encoder: PatchEncoder, bank_meta: dict | None = None) -> int:
    """The input side asked for, else the bank's, else the backbone's default (its preset's; for timm: names
    504 for /14, else 512)."""
    size = size or (bank_meta or {}).get("input_size") or encoder.default_input_size
    encoder.check_input_size(size, size)
    return size


def loader_options(settings: Settings) -> LoaderOptions:
    from hummingbird.datasets.loader import LoaderOptions

    return LoaderOptions(batch_size=settings.batch_size, num_workers=settings.num_workers,
                         device=str(device_for(settings.device)), progress=settings.progress)


def features_for(settings: Settings, encoder: PatchEncoder, size: int, bank_meta: dict | None = None,
                 bank_path: str | Path | None = None, training=None):
    """The feature source: a bank's own kind and settings, else the settings' ``features``. A FUNGI
    support memory is built from ``training`` (a dataset resized to ``size``) when its file does not
    exist yet."""
    from hummingbird.models.features import TokenFeatures

    meta = bank_meta or {}
    kind = meta.get("feature_kind") or settings.features
    if kind == "tokens":
        return TokenFeatures(encoder)
    if kind != "fungi":
        raise ConfigError(f"features {kind!r}: use tokens or fungi")
    from fungi_dense.assemble import fungi_features
    from fungi_dense.features import config_from_metadata

    config = config_from_metadata(meta) if meta else settings.fungi.config()
    recorded = meta.get("fungi_support") or {}
    if settings.fungi.support:  # a bank records the absolute path, usable from any working directory
        support = os.path.abspath(settings.fungi.support)
    else:
        support = bank_relative_file(recorded.get("path"), bank_path)
    return fungi_features(encoder, config, support, size, training=training,
                          support_fraction=settings.fungi.support_fraction,
                          support_index=settings.fungi.support_index, seed=settings.seed,
                          expected_sha256=recorded.get("sha256"), opts=loader_options(settings))


def open_dataset(kind: str, root: str | Path, split: str, transform, protocol: Protocol, *,
                 fileset: str | None = None, num_classes: int | None = None, min_side: int = 1,
                 role: str = "evaluation", seed: int = 0, max_images: int | None = None):
    """Dataset ``kind`` at ``root``/``split`` with the protocol's options for its ``role`` (``memory`` or
    ``evaluation``), restricted to a file set when given, then to its first ``max_images`` images."""
    from hummingbird.datasets.registry import load_dataset

    extra = {"num_classes": num_classes} if kind in ("folder", "voc", "labelme") else {}
    extra.update(protocol.dataset_options(kind, role))
    dataset = load_dataset(kind, root, split, transform, seed=seed, fileset=fileset, **extra).first(max_images)
    dataset.min_side = min_side
    return dataset


def memory_transform(protocol: Protocol, size: int, augment: bool = True):
    """The paired transform of memory images: the protocol's augmentation, or a plain resize."""
    from hummingbird.datasets.transforms import EvalResize

    return protocol.memory_transform(size) if augment else EvalResize(size)


def resolve_pipeline(settings: Settings, bank_meta: dict | None = None, bank_path: str | Path | None = None,
                     training_split=None) -> Pipeline:
    """Encoder, input size, feature source and protocol from ``settings`` and a bank's metadata.

    ``training_split``: a callable ``(size, patch_size) → dataset`` giving the training images a FUNGI
    support memory (and its PCA) is built from when its file does not exist yet (FUNGI features only).
    """
    import torch

    torch.manual_seed(settings.seed)
    meta = bank_meta or {}
    protocol = protocol_for(settings.protocol_preset, meta)
    encoder = encoder_for(settings, meta, bank_path, protocol)
    size = input_size_for(settings.input_size, encoder, meta)
    kind = meta.get("feature_kind") or settings.features
    training = training_split(size, encoder.patch_size) if kind == "fungi" and training_split else None
    features = features_for(settings, encoder, size, meta, bank_path, training)
    return Pipeline(encoder, features, size, protocol, device_for(settings.device), loader_options(settings),
                    settings)
