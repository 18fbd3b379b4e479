"""The public Python API: a segmenter built from annotated examples or loaded from a bank.

    from hummingbird import Segmenter
    seg = Segmenter.from_examples(images, masks, backbone="dinov2_vits14", weights="vits14.pth")
    labels = seg.segment(photo)                      # (H, W) int64 at the photo's own size
    nearest = seg.neighbours(photo, point=(120, 80))  # why that pixel got its label
    seg.save("bank.safetensors")                     # the same bank files as the command line

A :class:`Segmenter` holds a memory bank, the pipeline that encodes queries (backbone, features, input
size, protocol preset; resolved against the bank by :mod:`hummingbird.settings`) and its decoder, whose
search index is read from beside a saved bank (:mod:`hummingbird.memory.search_store`) instead of re-trained.
The command line is a thin layer over this class.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from hummingbird.building import build_bank, split_opener
from hummingbird.datasets.base import SegmentationDataset
from hummingbird.datasets.examples import MEMORY_DATASET, ExampleDataset, ExampleSources, as_mask, as_rgb
from hummingbird.errors import BankError, ConfigError, option
from hummingbird.files.paths import require_bank, require_data_root
from hummingbird.memory import search_store
from hummingbird.memory.bank import MemoryBank
from hummingbird.memory.targets import check_target_kind
from hummingbird.memory.decoder import HummingbirdDecoder
from hummingbird.pipeline import build_search, make_decoder, resolved_spec
from hummingbird.settings import (
    Pipeline,
    SearchOptions,
    memory_transform,
    open_dataset,
    protocol_for,
    resolve_pipeline,
    search_for,
    split_keywords,
)
from hummingbird.visual.neighbours import Neighbour, QueryResult, describe_neighbours, query_image
from hummingbird.visual.sources import bank_sources, grown_sources


def _parameters(method) -> set[str]:
    """The named parameters of ``method`` (offered beside the settings when a keyword is misspelt)."""
    return {name for name, p in inspect.signature(method).parameters.items() if p.kind == p.KEYWORD_ONLY}


@dataclass
class NeighbourQuery:
    """One query patch of an image: where it is, its neighbours in the memory and the image's labels."""

    image: Image.Image
    name: str
    row: int
    col: int
    query_box: tuple[float, float, float, float]  # (x0, y0, x1, y1) of the patch in the image's pixels
    labels: np.ndarray  # (H, W) the image's predicted labels: the segmenter's own, as segment() gives them
    neighbours: list[Neighbour]
    predicted: str  # class at the patch's centre

    def to_dict(self) -> dict:
        return {"image": self.name, "patch": [self.row, self.col], "query_box": list(self.query_box),
                "neighbours": [n.to_dict() for n in self.neighbours]}


class Segmenter:
    """A memory bank with the pipeline and decoder that query it. Build one with :meth:`from_examples`,
    :meth:`from_dataset` or :meth:`load`."""

    def __init__(self, bank: MemoryBank, pipeline: Pipeline, search: SearchOptions | None = None,
                 bank_path: str | Path | None = None, sources=None):
        self.bank, self.pipeline = bank, pipeline
        self.search = search or SearchOptions()
        self.bank_path = Path(bank_path) if bank_path is not None else None
        self._sources = sources
        self._index, self._index_spec = None, None
        self._decoders: dict[int, HummingbirdDecoder] = {}

    # ------------------------------------------------------------------------- construction

    @classmethod
    def from_examples(cls, images: Sequence, masks: Sequence, *, class_names: Sequence[str] | None = None,
                      memory_size: int | None = None, augmentation_epochs: int = 1, augment: bool = True,
                      fp16: bool = False, protocol_preset: str = "default", features: str = "tokens",
                      progress: bool = False, palette=None, **keywords) -> "Segmenter":
        """Build a memory from annotated images held in memory: lists of images and masks, or one of each
        (see :mod:`hummingbird.datasets.examples` for the accepted types; masks: class indices, 255 ignored).
        Every example is checked before the backbone is loaded; problems are named ``images[i]`` / ``masks[i]``.

        Keywords: the pipeline's (``backbone``, ``weights``, ``layer``, ``pos_embed``, ``input_size``,
        ``device``, ``precision``, ``compile``, ``batch_size``, ``seed``, ``fungi_*`` / ``fungi``), the decoder's (``k``,
        ``temperature``, ``index``, ``nprobe``, ``refine``), ``palette`` (``(C, 3)`` colours of the label maps
        drawn; default: the dataset's own when the class names are VOC's or ADE20K's, else generated) and
        ``options`` (a dict for the backbone loader, e.g. ``{"depth": 2}``); any other name is refused, naming
        the closest. ``progress=True`` shows progress bars and notes, ``verbose=True`` the notes; by default nothing
        is printed.
        """
        settings, search = split_keywords(dict(keywords, protocol_preset=protocol_preset, features=features,
                                                    progress=progress), "Segmenter.from_examples",
                                          _parameters(cls.from_examples))
        examples = ExampleDataset(images, masks, class_names, seed=settings.seed)
        if palette is not None:  # refused before the backbone is loaded
            from hummingbird.datasets.palettes import checked_palette

            checked_palette(palette, examples.num_classes)
        pipeline = resolve_pipeline(settings, training_split=lambda size, p: examples.with_transform(
            memory_transform(protocol_for(settings.protocol_preset), size, augment=False)))
        bank = build_bank(pipeline, examples, memory_size, augmentation_epochs, augment, fp16)
        sources = ExampleSources([s.id for s in examples.samples], examples.images,
                                 [str(f) if f else None for f in examples.files])
        return cls(bank, pipeline, search, sources=sources).with_palette(palette)

    @classmethod
    def from_dataset(cls, kind: str, root: str | Path, split: str, *, fileset: str | None = None,
                     num_classes: int | None = None, memory_size: int | None = None, augmentation_epochs: int = 1,
                     augment: bool = True, fp16: bool = False, palette=None, max_images: int | None = None,
                     **keywords) -> "Segmenter":
        """Build a memory from a dataset folder (``kind``: voc, ade20k, folder, ...; see data/README.md), or
        from its first ``max_images`` images (a quick trial); keywords as :meth:`from_examples`."""
        settings, search = split_keywords(keywords, "Segmenter.from_dataset", _parameters(cls.from_dataset))
        require_data_root(root)
        split_at = split_opener(kind, root, split, fileset, num_classes, settings, max_images)
        pipeline = resolve_pipeline(settings, training_split=split_at)
        dataset = split_at(pipeline.size, pipeline.patch_size,
                           memory_transform(pipeline.protocol, pipeline.size, augment))
        bank = build_bank(pipeline, dataset, memory_size, augmentation_epochs, augment, fp16)
        return cls(bank, pipeline, search).with_palette(palette)

    @classmethod
    def load(cls, path: str | Path, *, data_root: str | Path | None = None, palette=None,
             **overrides) -> "Segmenter":
        """Open a bank (file or sharded folder) with the pipeline it was built with; ``overrides`` change
        the pipeline (checked against the bank) or the decoder (``k``, ``temperature``, ``index``, ...).
        ``data_root``: where the bank's source images are now (for neighbour pictures); ``palette``: colours
        of the label maps drawn (default: the bank's own, see :attr:`palette`)."""
        from hummingbird.memory.shards import open_bank

        settings, search = split_keywords(overrides, "Segmenter.load", _parameters(cls.load))
        bank = open_bank(require_bank(path))
        check_target_kind(bank.metadata, "classes", str(path))
        pipeline = resolve_pipeline(settings, bank.metadata, path)
        bank.check_compatible(pipeline.metadata(), source=str(path))
        segmenter = cls(bank, pipeline, search, bank_path=path, sources=bank_sources(bank, path, data_root))
        return segmenter.with_palette(palette)

    @classmethod
    def empty(cls, class_names: Sequence[str], *, palette=None, protocol_preset: str = "default",
              **keywords) -> "Segmenter":
        """A segmenter whose memory holds no example yet, over ``class_names``: add, replace and remove
        annotated images one by one with :meth:`set_example` and :meth:`remove_example` (an interactive
        labelling loop). Keywords as :meth:`from_examples` (token features only); the neighbour search is
        exact unless ``index=`` says otherwise (an edited memory is searched again after every change)."""
        from hummingbird.memory.editing import empty_bank

        settings, search = split_keywords(dict(keywords, protocol_preset=protocol_preset), "Segmenter.empty",
                                          _parameters(cls.empty))
        names = [str(n) for n in class_names]
        if not names or len(names) > 255 or len(set(names)) != len(names):
            raise ConfigError(f"class_names: give 1 to 255 distinct names (got {len(names)}, "
                              f"{len(set(names))} distinct)")
        if settings.features != "tokens":
            raise ConfigError(f"{option('features', settings.features)}: an empty memory takes token features only "
                              f"(FUNGI features need a training split)")
        search.index = search.index or "exact"
        pipeline = resolve_pipeline(settings)
        meta = {**pipeline.features.metadata(), "target_kind": "classes", "input_size": pipeline.size,
                "dataset": MEMORY_DATASET, "split": "examples", "memory_size": None, "augmentation_epochs": 1,
                "seed": settings.seed, "protocol_preset": pipeline.protocol.name, "augmentation": "EvalResize",
                "feature_dtype": "float32", "image_files": []}
        bank = empty_bank(pipeline.features.dim, names, meta)
        return cls(bank, pipeline, search, sources=None).with_palette(palette)

    def encode(self, image, image_id: str | None = None) -> torch.Tensor:
        """Patch features ``(h, w, D)`` float32 (CPU) of ``image`` resized to the input size square, as a
        memory example is encoded (and as :meth:`segment_features` queries them): compute them once, keep
        them, label the image again and again as the memory changes."""
        from hummingbird.memory.tiling import resize_image

        picture = self.read_image(image)
        size = self.pipeline.size
        pixels = resize_image(picture, (size, size))[None].to(self.pipeline.device)
        with torch.inference_mode():
            feats = self.pipeline.features(pixels, [image_id] if image_id else None)
        return feats[0].float().cpu()

    def set_example(self, image_id: str, image, mask, *, features: torch.Tensor | None = None,
                    file: str | Path | None = None) -> "Segmenter":
        """Make ``image`` with ``mask`` (``(H, W)`` class indices, 255 unlabelled) the memory's example
        ``image_id``: its rows **replace** those of an earlier call with the same id (never duplicated).
        ``features``: the image's :meth:`encode` output, when already computed; ``file``: the image's path,
        recorded for neighbour pictures. A mask with no labelled pixel leaves the image no rows. Returns ``self``."""
        from hummingbird.datasets.transforms import EvalResize
        from hummingbird.memory.editing import replace_image_rows

        picture = self.read_image(image, image_id)
        values = as_mask(mask, image_id)  # the checks and messages of from_examples' masks (channels, dtype)
        if values.shape != (picture.height, picture.width):
            raise ConfigError(f"{image_id}: mask is {'x'.join(map(str, values.shape[::-1]))}, its image "
                              f"{picture.width}x{picture.height}")
        bad = np.unique(values[(values != 255) & ((values < 0) | (values >= self.num_classes))])
        if bad.size:
            raise ConfigError(f"{image_id}: mask values {bad[:10].tolist()} are not classes 0..{self.num_classes - 1} "
                              f"or 255 (unlabelled)")
        size, p = self.pipeline.size, self.pipeline.patch_size
        _, mask_t, view = EvalResize(size)(picture, values.astype(np.int64))
        feats = self.encode(picture, image_id) if features is None else features
        dists = self.pipeline.protocol.patch_labels(mask_t[None], p, self.num_classes)[0]  # (h, w, C)
        h, w, c = dists.shape
        if tuple(feats.shape[:2]) != (h, w):
            raise ConfigError(f"{image_id}: features of a {feats.shape[0]}x{feats.shape[1]} patch grid, "
                              f"expected {h}x{w}")
        flat = dists.reshape(-1, c)
        keep = (flat.sum(-1) > 0).nonzero(as_tuple=True)[0]
        cells = torch.stack([keep // w, keep % w], 1)
        bank = self.memory_bank()
        ids = list(bank.metadata.get("image_ids", []))
        files = list(bank.metadata.get("image_files") or [None] * len(ids))
        new = replace_image_rows(bank, image_id, feats.reshape(-1, feats.shape[-1])[keep], flat[keep], cells,
                                 view.tolist())
        if image_id not in ids:
            files.append(None)
        files[new.metadata["image_ids"].index(image_id)] = str(file) if file is not None else None
        new.metadata["image_files"] = files
        self.bank = new
        return self._memory_changed()

    def remove_example(self, image_id: str) -> "Segmenter":
        """Drop example ``image_id`` (all its rows) from the memory; nothing happens when it is not there."""
        from hummingbird.memory.editing import remove_image_rows

        self.bank = remove_image_rows(self.memory_bank(), image_id)
        return self._memory_changed()

    def set_class_names(self, class_names: Sequence[str]) -> "Segmenter":
        """Rename classes and append new ones (never remove: memory rows would lose their labels)."""
        from hummingbird.memory.editing import with_class_names

        self.bank = with_class_names(self.memory_bank(), [str(n) for n in class_names])
        palette = self.bank.metadata.get("palette")
        if palette is not None and len(palette) != self.num_classes:
            self.bank.metadata.pop("palette")
        return self._memory_changed()

    def _memory_changed(self) -> "Segmenter":
        self._index, self._index_spec, self._sources = None, None, None
        self._decoders.clear()
        self.bank_path = None
        return self

    def segment_features(self, features: torch.Tensor, size: tuple[int, int], *, return_probs: bool = False):
        """Label map ``(H, W)`` int64 at ``size = (H, W)`` from an image's :meth:`encode` features (nothing is
        encoded again); ``return_probs``: also the patch-grid class distributions ``(h, w, C)``."""
        if len(self.bank) == 0:
            raise ConfigError("the memory is empty: annotate an image first")
        decoder = self.decoder(min(self.search.k, len(self.bank)))  # a first stroke may give fewer rows than k
        dists = decoder.patch_distributions(features[None].float())
        labels = decoder.upsample(dists, tuple(size))[0].numpy()
        return (labels, dists[0]) if return_probs else labels

    def neighbours_of_features(self, features: torch.Tensor, row: int, col: int, k: int = 8) -> list[Neighbour]:
        """The ``k`` nearest memory patches of patch ``(row, col)`` of :meth:`encode` features."""
        if len(self.bank) == 0:
            raise ConfigError("the memory is empty: annotate an image first")
        h, w = features.shape[:2]
        if not (0 <= row < h and 0 <= col < w):
            raise ConfigError(f"{option('patch', (row, col))} is outside the {h}x{w} patch grid")
        k = min(k, len(self.bank))
        wide = HummingbirdDecoder(self.decoder(min(self.search.k, len(self.bank))).index, self.bank.labels, k=k, temperature=self.search.temperature)
        sims, rows = wide.neighbours(features[None, row:row + 1, col:col + 1].float())
        return describe_neighbours(self.memory_bank(), rows[0, 0, 0], sims[0, 0, 0])

    # ------------------------------------------------------------------------- the bank

    @property
    def class_names(self) -> list[str]:
        return self.bank.class_names

    @property
    def num_classes(self) -> int:
        return self.bank.num_classes

    @property
    def input_size(self) -> int:
        return self.pipeline.size

    @property
    def index_spec(self) -> str:
        """The neighbour search, ``auto`` resolved for this bank and device."""
        return resolved_spec(self.bank, search_for(self.search.index, self.pipeline.protocol), self.pipeline.device)

    @property
    def palette(self) -> np.ndarray:
        """``(256, 3)`` uint8 colours of label maps drawn (index 255, ignored, white): the colours given as
        ``palette=`` (recorded in the bank when saved), else the known dataset's colour of each class name
        (VOC, ADE20K), else VOC's by index for VOC-layout data, else generated distinct colours."""
        from hummingbird.datasets.palettes import palette_for

        meta = self.bank.metadata
        return palette_for(meta.get("dataset", "folder"), self.num_classes, self.class_names, meta.get("palette"))

    def with_palette(self, palette) -> "Segmenter":
        """Draw label maps with ``palette`` (``(C, 3)`` RGB values 0..255, or ``#rrggbb`` strings, one per
        class; ``None`` keeps the current colours); recorded in the bank's metadata. Returns ``self``."""
        from hummingbird.datasets.palettes import checked_palette

        if palette is not None:
            self.bank.metadata["palette"] = checked_palette(palette, self.num_classes).tolist()
        return self

    def memory_bank(self) -> MemoryBank:
        """The bank in memory (a sharded bank is read into one when its rows' sources are needed)."""
        if not isinstance(self.bank, MemoryBank):
            self.bank = self.bank.to_memory()
        return self.bank

    def _search_index(self):
        if self._index is None:
            spec, seed = self.index_spec, self.pipeline.settings.seed
            self._index_spec = spec
            build = lambda: build_search(self.bank, spec, nprobe=self.search.nprobe, seed=seed,  # noqa: E731
                                         refine=self.search.refine, device=self.pipeline.device)
            self._index = search_store.load_or_build(self.bank, self.bank_path, spec, build, seed=seed,
                                                     device=self.pipeline.device, nprobe=self.search.nprobe,
                                                     refine=self.search.refine, verbose=self.pipeline.settings.notes)
        return self._index

    def decoder(self, k: int | None = None) -> HummingbirdDecoder:
        """The decoder over the memory with ``k`` neighbours (default: the segmenter's ``k``)."""
        k = k or self.search.k
        if k not in self._decoders:
            self._decoders[k] = make_decoder(self.bank, k=k, temperature=self.search.temperature,
                                             index=self._search_index())
        return self._decoders[k]

    def add(self, images: Sequence, masks: Sequence) -> "Segmenter":
        """Grow the memory with more annotated examples (same pipeline, protocol and augmentation as the
        bank's); the search index is extended, not re-trained. Returns ``self``."""
        if self.bank_path is not None and search_store.is_stored(self.index_spec):
            self._search_index()  # the stored index, extended below
        meta = self.memory_bank().metadata
        first = meta.get("num_images", 0)
        examples = ExampleDataset(images, masks, self.class_names, seed=self.pipeline.settings.seed,
                                  first_id=first)
        taken = set(meta.get("image_ids", []))
        if taken & {s.id for s in examples.samples}:
            examples = ExampleDataset(images, masks, self.class_names, seed=self.pipeline.settings.seed,
                                      ids=[f"example_{first + i:05d}" for i in range(len(examples))])
        augmented = meta.get("augmentation") not in (None, "EvalResize")
        new = build_bank(self.pipeline, examples, None, meta.get("augmentation_epochs", 1), augmented,
                     meta.get("feature_dtype") == "float16")
        views = new.views.clone()
        views[:, 0] += first
        sources = new.sources.clone()
        sources[:, 0] += len(self.bank.views)
        old_meta = dict(meta)
        self.bank = MemoryBank(torch.cat([self.bank.features, new.features.to(self.bank.features.dtype)]),
                               torch.cat([self.bank.labels, new.labels]), torch.cat([self.bank.sources, sources]),
                               torch.cat([self.bank.views, views]), old_meta)
        self.bank.metadata.update(num_images=first + len(examples),
                                  image_ids=list(meta.get("image_ids", [])) + [s.id for s in examples.samples],
                                  dataset=MEMORY_DATASET if meta.get("dataset") == MEMORY_DATASET else meta["dataset"],
                                  checksum=None, num_patches=len(self.bank))
        self._sources = grown_sources(self._sources, self.bank, examples, first)
        if self._index is not None and hasattr(self._index, "add"):
            if hasattr(self._index, "keep_raw"):  # faiss: add the rows, re-ranking sees every row
                self._index.add(new.features).keep_raw(self.bank.features)
            else:
                self._index.add(new.features)
        if self._index is not None and (not search_store.is_stored(self._index_spec)
                                        or self.index_spec != self._index_spec):
            self._index = None  # an exact search trains nothing, or the grown memory wants another search
        self._decoders.clear()
        self.bank_path = None  # the saved bank no longer matches: save() writes the grown one
        return self

    def save(self, path: str | Path, with_index: bool = True) -> Path:
        """Write the bank (one ``.safetensors`` file, as ``build-memory``) and its trained search index
        (``<path>.index/``). Examples held only in memory are written as ``<path>.images/<id>.png`` so
        that neighbour pictures work from the saved bank; examples given as files are recorded by path."""
        path = Path(path)
        if self.memory_bank().metadata.get("dataset") == MEMORY_DATASET:
            self._save_sources(path)
        self.bank.save(path)
        self.bank_path = path
        if with_index:
            spec = self.index_spec
            if self._index is not None or search_store.is_stored(spec):
                search_store.store(self._search_index(), self.bank, path, spec, seed=self.pipeline.settings.seed)
        return path

    def _save_sources(self, path: Path) -> None:
        from hummingbird.files.atomic import atomic_path

        sources = self._sources
        folder = path.with_name(path.name + ".images")
        files = []
        for i, image_id in enumerate(self.bank.metadata["image_ids"]):
            recorded = sources.files[i] if sources is not None else None
            files.append(recorded)
            if recorded is None and sources is not None and sources.images[i] is not None:
                with atomic_path(folder / f"{image_id}.png") as tmp:
                    sources.images[i].save(tmp, format="PNG")
        self.bank.metadata.update(dataset_root=folder.name, image_files=files)

    # ------------------------------------------------------------------------- queries

    def read_image(self, image, what: str = "image") -> Image.Image:
        """An image (PIL, array, tensor or path) as 8-bit RGB, refused when smaller than one patch."""
        picture = as_rgb(image, str(image) if isinstance(image, (str, Path)) else what)
        p = self.pipeline.patch_size
        if min(picture.width, picture.height) < p:
            name = image if isinstance(image, (str, Path)) else what
            raise ConfigError(f"{name}: image is {picture.width}x{picture.height}, smaller than one {p}-px patch")
        return picture

    def segment(self, image, *, resize_mode: str = "aspect", return_probs: bool = False,
                image_id: str | None = None):
        """Label map ``(H, W)`` int64 at the image's own size (``return_probs``: also the class
        probabilities ``(C, H, W)`` float32, bilinearly upsampled; the labels are their argmax).
        ``resize_mode``: aspect (short side to the input size, one pass), slide (windows) or square."""
        from hummingbird.memory.tiling import patch_distributions

        picture = self.read_image(image)
        if image_id is None and isinstance(image, (str, Path)):
            image_id = Path(image).stem
        decoder = self.decoder()
        dists = patch_distributions(self.pipeline.features, decoder, picture, self.pipeline.size, resize_mode,
                                    batch_size=self.pipeline.settings.batch_size, image_id=image_id)
        labels = decoder.upsample(dists, (picture.height, picture.width))[0].numpy()
        if not return_probs:
            return labels
        probs = torch.nn.functional.interpolate(dists.permute(0, 3, 1, 2).float(), size=labels.shape,
                                                mode="bilinear", align_corners=False)[0]
        return labels, probs.numpy()

    def segment_many(self, images: Sequence, *, batch_size: int | None = None, resize_mode: str = "aspect") -> list:
        """Label maps of several images; images whose network inputs have the same shape share forward
        passes of up to ``batch_size`` (default: the settings' batch size)."""
        from hummingbird.memory.tiling import input_shape, resize_image

        if resize_mode == "slide":
            return [self.segment(im, resize_mode=resize_mode) for im in images]
        pictures = [self.read_image(im, f"images[{i}]") for i, im in enumerate(images)]
        batch_size = batch_size or self.pipeline.settings.batch_size
        p, size, decoder = self.pipeline.patch_size, self.pipeline.size, self.decoder()
        shapes = [input_shape(im.height, im.width, size, p, resize_mode) for im in pictures]
        out: list = [None] * len(pictures)
        for shape in dict.fromkeys(shapes):
            group = [i for i, s in enumerate(shapes) if s == shape]
            for start in range(0, len(group), batch_size):
                chunk = group[start:start + batch_size]
                batch = torch.stack([resize_image(pictures[i], shape) for i in chunk]).to(self.pipeline.device)
                dists = decoder.patch_distributions(self.pipeline.features(batch).cpu())
                for i, dist in zip(chunk, dists):
                    out[i] = decoder.upsample(dist[None], (pictures[i].height, pictures[i].width))[0].numpy()
        return out

    def query_neighbours(self, image, *, point: tuple[float, float] | None = None,
                         patch: tuple[int, int] | None = None, k: int = 8,
                         resize_mode: str = "aspect") -> NeighbourQuery:
        """The ``k`` nearest memory patches of one patch of ``image`` (given by ``patch = (row, col)`` on the
        patch grid, or ``point = (x, y)``, a pixel of the image), with the image's labels. ``k`` is how many
        neighbours are shown; the labels are the segmenter's own (its decoder's ``k``), as :meth:`segment`
        gives them."""
        from hummingbird.visual.geometry import patch_box_in_source, point_to_patch

        if (point is None) == (patch is None):
            raise ConfigError("give exactly one of point=(x, y) or patch=(row, col)")
        picture = self.read_image(image)
        result = self.query(picture, resize_mode=resize_mode, k=k)
        h, w = result.grid
        p = self.pipeline.patch_size
        if patch is not None:
            row, col = (int(v) for v in patch)
        else:
            try:
                row, col = point_to_patch(point[0], point[1], picture.size, p, result.input_shape)
            except ValueError as exc:
                raise ConfigError(f"{option('point', tuple(point))}: {exc}") from None
        if not (0 <= row < h and 0 <= col < w):
            raise ConfigError(f"{option('patch', (row, col))} is outside the {h}x{w} patch grid")
        neighbours = describe_neighbours(self.memory_bank(), result.rows[row, col], result.similarities[row, col])
        box = patch_box_in_source([0, 0, picture.height, picture.width, 0], row, col, p, result.input_shape)
        centre_x = min(int((box[0] + box[2]) / 2), picture.width - 1)
        centre_y = min(int((box[1] + box[3]) / 2), picture.height - 1)
        name = str(image) if isinstance(image, (str, Path)) else "image"
        return NeighbourQuery(picture, name, row, col, box, result.labels, neighbours,
                              self.class_names[int(result.labels[centre_y, centre_x])])

    def query(self, image, *, resize_mode: str = "aspect", k: int | None = None) -> QueryResult:
        """Every patch's ``k`` nearest memory rows and similarities ``(h, w, k)`` (default: the decoder's
        ``k``) and the image's labels — the segmenter's own, as :meth:`segment` gives them, whatever ``k``
        (one pass: ``resize_mode`` aspect or square), as the viewer shows them."""
        image_id = Path(image).stem if isinstance(image, (str, Path)) else None
        return query_image(self.pipeline.features, self.decoder(), self.read_image(image), self.pipeline.size,
                           resize_mode, shown=k, image_id=image_id)

    def neighbours(self, image, **where) -> list[Neighbour]:
        """The ``k`` (default 8) nearest memory patches of one patch of ``image`` (``point=(x, y)`` or
        ``patch=(row, col)``): records of memory row, similarity, label, source image and box."""
        return self.query_neighbours(image, **where).neighbours

    def neighbours_figure(self, image, **where) -> Image.Image:
        """The picture ``hummingbird neighbours`` writes: the image with its labels and the query patch
        outlined, beside crops of the neighbours' source images."""
        return self.figure(self.query_neighbours(image, **where))

    def figure(self, query: NeighbourQuery) -> Image.Image:
        from hummingbird.visual import render

        title = (f"{Path(query.name).name} patch ({query.row}, {query.col}): predicted {query.predicted}; "
                 f"{len(query.neighbours)} nearest memory patches")
        return render.neighbour_grid(query.image, query.labels, query.query_box, query.neighbours,
                                     self.sources(), self.palette, title)

    def sources(self):
        """The bank's source images (for neighbour pictures and the viewer)."""
        if self._sources is None:
            self._sources = bank_sources(self.memory_bank(), self.bank_path, None)
        return self._sources

    # ------------------------------------------------------------------------- evaluation

    def open_dataset(self, kind: str, root: str | Path, split: str, *, fileset: str | None = None,
                     num_classes: int | None = None, max_images: int | None = None) -> SegmentationDataset:
        """A labelled split resized for evaluation with this segmenter (its input size and protocol); its
        first ``max_images`` images when given."""
        from hummingbird.datasets.transforms import EvalResize

        require_data_root(root)
        return open_dataset(kind, root, split, EvalResize(self.pipeline.size), self.pipeline.protocol,
                            fileset=fileset, num_classes=num_classes or self.num_classes,
                            min_side=self.pipeline.patch_size, seed=self.pipeline.settings.seed,
                            max_images=max_images)

    def evaluate(self, images_or_dataset, masks: Sequence | None = None, *, save_predictions: str | Path | None = None,
                 overlays: bool = False, indices: Sequence[int] | None = None, reduce=None,
                 fileset: str | None = None, kind: str | None = None) -> dict:
        """The results the command line's ``evaluate`` writes: mIoU and its variants, per-class scores,
        the confusion matrix, the configuration and the bank's record. Scores are fractions of 1 (mIoU 0.42,
        not 42; ``result["units"]`` says so; the command line's table prints percent). Give a dataset (from
        :meth:`open_dataset`) or images and masks. ``save_predictions``: also write each prediction
        as a palette PNG there (``overlays``: and a colour overlay). ``indices``/``reduce``: evaluate
        only some images and sum the confusion matrix with ``reduce(matrix)`` (distributed runs)."""
        from hummingbird.datasets.transforms import EvalResize
        from hummingbird.pipeline import confusion_of, summarise

        if masks is not None:
            dataset = ExampleDataset(images_or_dataset, masks, self.class_names, EvalResize(self.pipeline.size))
        else:
            dataset = images_or_dataset
        if list(dataset.class_names) != self.class_names:
            differ = [f"{i}: {a!r} vs {b!r}" for i, (a, b) in enumerate(zip(self.class_names, dataset.class_names))
                      if a != b]
            raise BankError(f"{self.bank_path or 'memory bank'}: built for other classes than {dataset.root} "
                            f"({self.num_classes} vs {dataset.num_classes} classes"
                            f"{'; ' + ', '.join(differ[:3]) if differ else ''})")
        decoder, opts = self.decoder(), self.pipeline.loader
        started = time.perf_counter()
        if save_predictions:
            from hummingbird.evaluation.saved_predictions import evaluate_and_save

            confusion = evaluate_and_save(self.pipeline.features, decoder, dataset, save_predictions, self.palette,
                                          opts, indices=indices, overlay=overlays)
        else:
            confusion = confusion_of(self.pipeline.features, decoder, dataset, opts, indices=indices)
        if reduce is not None:
            reduce(confusion.matrix)
        result = summarise(confusion.matrix, list(dataset.class_names), headline=self.pipeline.protocol.headline_metric)
        result.update(num_images=len(dataset), seconds=round(time.perf_counter() - started, 3))
        settings = self.pipeline.settings
        config = {"protocol": "hummingbird", "protocol_preset": self.pipeline.protocol.name,
                  "dataset": kind or dataset.name,
                  "data_root": str(dataset.root), "split": dataset.split, "fileset": fileset, "k": self.search.k,
                  "temperature": self.search.temperature,
                  "index": search_for(self.search.index, self.pipeline.protocol),
                  "search": getattr(decoder.index, "spec", None), "nprobe": self.search.nprobe,
                  "input_size": self.pipeline.size, "seed": settings.seed,
                  "precision": self.pipeline.encoder.active_precision, "compile": settings.compile}
        bank = {k: v for k, v in self.bank.metadata.items() if k not in ("image_ids", "image_files")}
        return {"config": config, "bank": bank, **result}
