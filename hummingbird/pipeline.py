"""The three jobs: build a memory bank from annotated images, evaluate a bank on a labelled split,
and segment new images. Data flows image → features ``(B, h, w, D)`` → bank / decoder → label map.
"""

from __future__ import annotations

import time
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hummingbird.catalog import DEFAULT_K, DEFAULT_TEMPERATURE
from hummingbird.datasets.base import IGNORE_INDEX, SegmentationDataset
from hummingbird.datasets.loader import LoaderOptions, make_loader
from hummingbird.errors import ConfigError, option
from hummingbird.evaluation.metrics import ConfusionMatrix, open_hbird_hungarian_scores, scores
from hummingbird.evaluation.protocols import PROTOCOLS, Protocol
from hummingbird.evaluation.results import UNITS, UNITS_KEY
from hummingbird.memory.bank import MemoryBank
from hummingbird.memory.decoder import HummingbirdDecoder
from hummingbird.memory.faiss_index import NeighbourIndex
from hummingbird.memory.search import (
    AUTO_SEARCH,
    CLUSTERED_SEARCH,
    EXACT_SEARCH,
    ClusteredSearch,
    ExactSearch,
    as_float_tensor,
    auto_spec,
    fits_on_device,
)
from hummingbird.models.features import TokenFeatures
from hummingbird.runtime.profiling import NO_TIMER

SELECTION_SALT = 0x5BD1E995  # decorrelates an image's patch selection from its augmentation


def build_memory_bank(features: TokenFeatures, dataset: SegmentationDataset, input_size: int,
                      memory_size: int | None = None, augmentation_epochs: int = 1, seed: int = 0,
                      fp16: bool = False, opts: LoaderOptions | None = None, indices: Sequence[int] | None = None,
                      epochs: Sequence[int] | None = None, protocol: Protocol = PROTOCOLS["default"]) -> MemoryBank:
    """Encode every image of ``dataset`` (``augmentation_epochs`` augmented passes) into a bank.

    Args:
        features: feature source, already on ``opts.device``.
        dataset: annotated images whose transform outputs ``input_size``-square crops.
        memory_size: total patches to keep (``memory_size // (len(dataset) * augmentation_epochs)`` per
            image, chosen by the protocol's selection); ``None`` keeps every labelled patch.
        fp16: store features as float16 (half the memory; labels stay float32).
        indices, epochs: encode only these images and augmentation epochs (one shard of a sharded
            build); the per-image budget still follows the whole dataset, so shards concatenate to the
            bank a single pass would build.
    """
    opts = opts or LoaderOptions()
    per_image = None
    if memory_size is not None:
        per_image = memory_size // (len(dataset) * augmentation_epochs)
        if per_image < 1:
            raise ConfigError(f"{option('memory_size', memory_size)} is smaller than one patch per image for "
                              f"{len(dataset)} images x {augmentation_epochs} epochs")
    feats, labels, sources, views = [], [], [], []
    view_count = 0
    started = time.perf_counter()
    for epoch in (range(augmentation_epochs) if epochs is None else epochs):
        dataset.epoch = epoch
        desc = f"memory epoch {epoch + 1}/{augmentation_epochs}"
        for batch in tqdm(make_loader(dataset, opts, indices), desc=desc, disable=not opts.progress, unit="batch"):
            f = features(batch["image"].to(opts.device), image_ids=list(batch["id"])).cpu()  # (B, h, w, D)
            b, h, w, d = f.shape
            dists = protocol.patch_labels(batch["mask"], features.patch_size, dataset.num_classes).view(b, h * w, -1)
            f = f.reshape(b, h * w, d)
            if per_image is None:
                keep = dists.sum(-1) > 0  # every patch with at least one labelled pixel
                img, patch = keep.nonzero(as_tuple=True)
            else:
                seeds = [dataset.sample_seed(int(i)) ^ SELECTION_SALT for i in batch["index"]]
                chosen = protocol.select(dists, per_image, seeds)
                img, slot = (chosen >= 0).nonzero(as_tuple=True)
                patch = chosen[img, slot]
            feats.append(f[img, patch].to(torch.float16 if fp16 else torch.float32))
            labels.append(dists[img, patch])
            sources.append(torch.stack([view_count + img, patch // w, patch % w], 1).to(torch.int32))
            views.append(torch.cat([batch["index"][:, None], batch["view"]], 1).to(torch.int32))
            view_count += b
    if not feats or sum(len(x) for x in feats) == 0:
        raise ConfigError(f"{dataset.root}: no labelled patches found (are all mask pixels ignored?)")
    bank = MemoryBank(torch.cat(feats), torch.cat(labels), torch.cat(sources), torch.cat(views), {
        **features.metadata(),
        "target_kind": "classes",
        "input_size": input_size,
        "dataset": dataset.name,
        "dataset_root": str(dataset.root),
        "split": dataset.split,
        "num_images": len(dataset),
        "image_ids": [s.id for s in dataset.samples],
        "class_names": list(dataset.class_names),
        "memory_size": memory_size,
        "augmentation_epochs": augmentation_epochs,
        "seed": seed,
        "protocol_preset": protocol.name,
        "augmentation": type(dataset.transform).__name__ if dataset.transform else None,
        "feature_dtype": "float16" if fp16 else "float32",
        "build_seconds": round(time.perf_counter() - started, 3),
    })
    bank.check_finite(f"memory built from {dataset.root}", "the backbone gave non-finite features (damaged "
                                                           "weights? float16 overflow?)")
    return bank


def resolved_spec(bank, index_spec: str, device: str | torch.device = "cpu") -> str:
    """``index_spec`` with ``auto`` replaced by the search it picks for this bank on ``device``."""
    if index_spec != AUTO_SEARCH:
        return index_spec
    chunks = [bank.features] if isinstance(bank, MemoryBank) else list(bank.feature_chunks())
    itemsize = 2 if str(chunks[0].dtype).endswith("float16") else 4
    return auto_spec(len(bank), torch.device(device), len(bank) * bank.dim * itemsize)


def build_search(bank, index_spec: str = AUTO_SEARCH, nprobe: int | None = None, use_gpu: bool | str = "auto",
                 seed: int = 0, refine: int = 1, train_size: int = 262_144, device: str | torch.device = "cpu"):
    """The neighbour search over a bank's features (a :class:`MemoryBank`, or a sharded bank read shard
    by shard from memory maps); see :func:`make_decoder` for the arguments."""
    device = torch.device(device)
    chunks = [bank.features] if isinstance(bank, MemoryBank) else list(bank.feature_chunks())
    spec = resolved_spec(bank, index_spec, device)
    if spec == EXACT_SEARCH:
        return ExactSearch(chunks, device)
    if spec == CLUSTERED_SEARCH:
        return ClusteredSearch(chunks, device, nprobe=nprobe, seed=seed)
    return _faiss_index(bank, spec, nprobe=64 if nprobe is None else nprobe, use_gpu=use_gpu, seed=seed,
                        refine=refine, train_size=train_size)


def make_decoder(bank, k: int = DEFAULT_K, temperature: float = DEFAULT_TEMPERATURE, index_spec: str = AUTO_SEARCH,
                 nprobe: int | None = None, use_gpu: bool | str = "auto", seed: int = 0, refine: int = 1,
                 train_size: int = 262_144, device: str | torch.device = "cpu", index=None) -> HummingbirdDecoder:
    """Index a bank's features (a :class:`MemoryBank`, or a sharded bank read shard by shard from
    memory maps) and wrap them in a :class:`HummingbirdDecoder`.

    Args:
        index_spec: ``auto`` (default: exact search for small memories, clustered search above a
            measured size, see :func:`hummingbird.memory.search.auto_spec`), ``exact`` or ``clustered`` (torch
            searches on ``device``), or a faiss factory string (``Flat``, ``IVF4096,PQ64``, ...).
        nprobe: partitions visited per query by clustered and faiss IVF searches (default: the
            clustered search's own rule, 64 for faiss).
        use_gpu, refine, train_size: faiss indexes only (see :class:`~hummingbird.memory.faiss_index.NeighbourIndex`).
        device: where torch searches keep the memory and run; on CUDA the labels go there too (when
            they fit), so the whole query path stays on the GPU.
        index: an already built search over the bank (e.g. read by :mod:`hummingbird.memory.search_store`);
            the other search arguments are then not used.
    """
    if index is None:
        index = build_search(bank, index_spec, nprobe=nprobe, use_gpu=use_gpu, seed=seed, refine=refine,
                             train_size=train_size, device=device)
    labels = bank.labels.float() if isinstance(bank, MemoryBank) else bank.labels
    home = getattr(index, "device", torch.device("cpu"))
    if home.type != "cpu" and fits_on_device(len(bank) * bank.num_classes * 4, home):
        labels = torch.cat([as_float_tensor(p) for p in getattr(labels, "parts", [labels])]).to(home)
    return HummingbirdDecoder(index, labels, k=k, temperature=temperature)


def _faiss_index(bank, spec: str, nprobe: int, use_gpu: bool | str, seed: int, refine: int,
                 train_size: int) -> NeighbourIndex:
    """A faiss index over a bank (filled shard by shard for sharded banks), keeping the raw features
    for exact re-ranking."""
    index = NeighbourIndex(bank.dim, spec, nprobe=nprobe, use_gpu=use_gpu, seed=seed, refine=refine,
                           train_size=train_size)
    if isinstance(bank, MemoryBank):
        return index.add(bank.features).keep_raw(bank.features)
    from hummingbird.memory.rows import RowGather

    raw = RowGather(list(bank.feature_chunks()))
    rng = np.random.default_rng(seed)
    sample_rows = np.sort(rng.choice(len(raw), min(index.train_size, len(raw)), replace=False))
    index.train(raw[torch.from_numpy(sample_rows)])
    for chunk in bank.feature_chunks():
        index.add(chunk)
    return index.keep_raw(raw)


class Prediction(NamedTuple):
    """One batch of :func:`predictions`."""

    ids: list[str]
    labels: torch.Tensor  # (B, S, S) int64 predicted label maps, on the features' device
    masks: torch.Tensor  # (B, S, S) ground truth
    distributions: torch.Tensor  # (B, h, w, C) patch-grid label distributions
    batch: dict  # the loader's batch (index, view: the source images' own size, ...)


def predictions(features: TokenFeatures, decoder: HummingbirdDecoder, dataset: SegmentationDataset,
                opts: LoaderOptions | None = None, indices: Sequence[int] | None = None, timer=NO_TIMER,
                desc: str = "predict") -> Iterator[Prediction]:
    """The one batch loop of evaluation: per batch of ``dataset`` (or its ``indices``), a :class:`Prediction`
    (label maps at the evaluation size and the distributions they come from). ``timer`` (a
    :class:`~hummingbird.runtime.profiling.StageTimer`) is charged with data loading, the backbone and the
    decoder's stages."""
    opts = opts or LoaderOptions()
    batches = iter(tqdm(make_loader(dataset, opts, indices), desc=desc, disable=not opts.progress, unit="batch"))
    previous, decoder.timer = decoder.timer, timer
    try:
        while True:
            with timer("data loading"):
                batch = next(batches, None)
            if batch is None:
                return
            masks = batch["mask"]
            with timer("backbone"):
                query = features(batch["image"].to(opts.device, non_blocking=True), image_ids=list(batch["id"]))
            dists = decoder.patch_distributions(query)
            labels = decoder.upsample(dists, tuple(masks.shape[-2:]), timer)
            yield Prediction(list(batch["id"]), labels, masks, dists, batch)
    finally:
        decoder.timer = previous


def confusion_of(features: TokenFeatures, decoder: HummingbirdDecoder, dataset: SegmentationDataset,
                 opts: LoaderOptions | None = None, indices: Sequence[int] | None = None,
                 timer=NO_TIMER) -> ConfusionMatrix:
    """Confusion matrix of ``decoder`` on ``dataset`` (or its ``indices``); ``timer`` (a
    :class:`~hummingbird.runtime.profiling.StageTimer`) is charged with every stage of the path."""
    confusion = ConfusionMatrix(dataset.num_classes, IGNORE_INDEX)
    for predicted in predictions(features, decoder, dataset, opts, indices, timer, desc="evaluate"):
        with timer("metric update"):
            confusion.update(predicted.labels, predicted.masks)  # counted on the predictions' device
    return confusion


def summarise(confusion: torch.Tensor, class_names: list[str], headline: str = "mIoU") -> dict:
    """Scores of a ``(C, C)`` confusion matrix, each named for what it is: ``mIoU`` (plain, no matching,
    mean over the classes that occur), ``open_hbird_hungarian_mIoU`` (open-hummingbird-eval's Hungarian
    matching, mean over all classes), per-class IoU of both, accuracies, and the matrix itself.
    ``headline`` names the one a protocol reports; every score is a fraction of 1 (``units`` says so)."""
    result = scores(confusion, class_names)
    matched = open_hbird_hungarian_scores(confusion, class_names)
    result["open_hbird_hungarian_mIoU"] = matched.pop("mIoU")
    result["open_hbird_hungarian"] = matched
    result["headline"] = headline
    result[UNITS_KEY] = UNITS
    result["confusion_matrix"] = confusion.tolist()
    return result


def evaluate(features: TokenFeatures, decoder: HummingbirdDecoder, dataset: SegmentationDataset,
             opts: LoaderOptions | None = None, headline: str = "mIoU") -> dict:
    """:func:`summarise` of ``decoder`` on ``dataset`` (whose transform resizes to the evaluation size)."""
    started = time.perf_counter()
    confusion = confusion_of(features, decoder, dataset, opts)
    result = summarise(confusion.matrix, list(dataset.class_names), headline)
    result.update(num_images=len(dataset), seconds=round(time.perf_counter() - started, 3))
    return result
