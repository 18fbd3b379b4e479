"""In-context monocular depth: a memory of patch features with depth targets, answered in metres.

    from hummingbird import DepthEstimator
    est = DepthEstimator.from_dataset("nyu", "data/nyu", "train", backbone="dinov2_vits14", weights="vits14.pth")
    depth = est.predict(photo)                                  # (H, W) float32 metres, the photo's size
    result = est.evaluate(est.open_dataset("nyu", "data/nyu", "test"))  # RMSE, AbsRel, ... and the baseline
    est.save("nyu.safetensors")                                 # a bank with target_kind "depth"

The memory is built like a segmentation memory (same backbone, features, search and decoder): every
patch of the memory images that has a valid depth pixel becomes a row ``(feature, target)`` (targets:
:mod:`hummingbird.memory.depth_targets`). A query patch's target is the ``softmax(s/τ)``-weighted average of
its ``k`` nearest rows' targets (:func:`hummingbird.memory.decoder.soft_labels`), decoded to metres and
upsampled bilinearly to the pixels. Images are resized keeping their aspect ratio (short side = the input
size, as ``segment --resize-mode aspect``); NYU frames are cut to the region inside their white border
first (:mod:`hummingbird.datasets.depth`), and the border is filled by replicating the prediction's edge.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from hummingbird.catalog import DEFAULT_DEPTH_BINS, DEFAULT_DEPTH_ENCODING
from hummingbird.datasets.depth import DepthExamples, DepthSample, frame_box, open_depth_dataset
from hummingbird.errors import ConfigError, HummingbirdWarning
from hummingbird.evaluation.depth_metrics import DepthMetricOptions, DepthScores
from hummingbird.memory.bank import MemoryBank
from hummingbird.memory.decoder import HummingbirdDecoder
from hummingbird.memory.depth_targets import DepthEncoding, fill_frame, upsample_depth
from hummingbird.memory.targets import check_target_kind
from hummingbird.memory.tiling import input_shape, resize_image
from hummingbird.pipeline import make_decoder
from hummingbird.settings import Pipeline, SearchOptions, resolve_pipeline, search_for, split_keywords

#: The default depth target (docs/depth.md "Choices"): the mean log depth of a patch's valid pixels.
DEFAULT_ENCODING = DEFAULT_DEPTH_ENCODING
UPSAMPLING = ("decoded patch depth, bilinear (align_corners=False) to the region the model saw; a border "
              "around it filled by replicating the edge")


def _pipeline(keywords: dict) -> tuple[Pipeline, SearchOptions]:
    settings, search = split_keywords(keywords)
    if settings.features != "tokens":
        raise ConfigError(f"--features {settings.features}: depth memories are built from tokens features")
    if settings.protocol_preset not in (None, "default"):
        raise ConfigError(f"--protocol-preset {settings.protocol_preset}: a segmentation preset; depth follows "
                          f"the default preset")
    return resolve_pipeline(settings), search


def model_input_shape(sample: DepthSample, size: int, patch_size: int) -> tuple[int, int]:
    """``(h_in, w_in)``: the network input of the region of ``sample`` the model sees, aspect kept."""
    top, bottom, left, right = sample.box
    return input_shape(bottom - top, right - left, size, patch_size, "aspect")


def _pixels(sample: DepthSample, shape: tuple[int, int]) -> torch.Tensor:
    """The region of ``sample`` the model sees, resized to ``shape`` → ``(3, h_in, w_in)`` in [0, 1]."""
    top, bottom, left, right = sample.box
    return resize_image(sample.image.crop((left, top, right, bottom)), shape)


def _batches(pipeline: Pipeline, samples, desc: str) -> Iterator[tuple[list[DepthSample], torch.Tensor]]:
    """Consecutive samples of the same network input shape, up to the batch size at a time, with their
    network inputs ``(B, 3, h_in, w_in)``."""
    batch, shape = [], None
    for i in tqdm(range(len(samples)), desc=desc, disable=not pipeline.settings.progress, unit="img"):
        sample = samples[i]
        this = model_input_shape(sample, pipeline.size, pipeline.patch_size)
        if batch and (this != shape or len(batch) == pipeline.settings.batch_size):
            yield batch, torch.stack([_pixels(s, shape) for s in batch])
            batch = []
        batch.append(sample)
        shape = this
    if batch:
        yield batch, torch.stack([_pixels(s, shape) for s in batch])


def _region(array: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    return array[box[0]:box[1], box[2]:box[3]]


def refuse_overwriting(samples, folder: str | Path) -> None:
    """Raise :class:`ConfigError` if a prediction file ``folder/<id>.png`` (or ``<id>_error.png``) of ``samples``
    would replace one of their own image or depth files."""
    inputs = {}
    for entry in getattr(samples, "files", []):
        for path in (entry.image, entry.depth) if hasattr(entry, "depth") else (entry,):
            if path is not None:
                inputs[Path(path).resolve()] = path
    for sample_id in samples.ids:
        for name in (f"{sample_id}.png", f"{sample_id}_error.png"):
            target = (Path(folder) / name).resolve()
            if target in inputs:
                raise ConfigError(f"{Path(folder) / name}: --save-predictions would write over the dataset file "
                                  f"{inputs[target]}; choose another folder")


def depth_extent(samples) -> tuple[float, float]:
    """Smallest and largest valid depth (metres) of ``samples`` (reads the depth maps only)."""
    low, high = np.inf, -np.inf
    for i in range(len(samples)):
        depth, valid = samples.read_depth(i)
        low, high = min(low, float(depth[valid].min())), max(high, float(depth[valid].max()))
    return low, high


def build_depth_bank(pipeline: Pipeline, samples, encoding: DepthEncoding, memory_size: int | None = None,
                     fp16: bool = False) -> MemoryBank:
    """A depth memory of ``samples`` (a :class:`~hummingbird.datasets.depth.DepthDataset` or
    :class:`~hummingbird.datasets.depth.DepthExamples`): every patch with a valid depth pixel (or
    ``memory_size // len(samples)`` of them per image, drawn with the settings' seed), targets in ``encoding``."""
    started = time.perf_counter()
    if encoding.name == "bins":
        encoding = encoding.with_range(*depth_extent(samples))
    per_image = None
    if memory_size is not None:
        per_image = memory_size // len(samples)
        if per_image < 1:
            raise ConfigError(f"--memory-size {memory_size} is smaller than one patch per image for "
                              f"{len(samples)} images")
    seed = pipeline.settings.seed
    feats, targets, sources, views, ids = [], [], [], [], []
    depth_sum, depth_rows = 0.0, 0
    for batch, pixels in _batches(pipeline, samples, "depth memory"):
        f = pipeline.features(pixels.to(pipeline.device)).cpu()  # (B, h, w, D)
        grid = tuple(f.shape[1:3])
        for sample, feature in zip(batch, f):
            depth, valid = _region(sample.depth, sample.box), _region(sample.valid, sample.box)
            target, ok = encoding.targets(depth, valid, grid=grid)
            mean = DepthEncoding("mean").targets(depth, valid, grid=grid)[0]
            rows = ok[0].reshape(-1).nonzero(as_tuple=True)[0]
            if per_image is not None and len(rows) > per_image:
                order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed * 100_003 + len(ids)))
                rows = rows[order[:per_image]].sort().values
            view = len(ids)
            feats.append(feature.reshape(-1, f.shape[-1])[rows].to(torch.float16 if fp16 else torch.float32))
            targets.append(target.reshape(-1, encoding.width)[rows])
            depth_sum += float(mean.reshape(-1)[rows].double().sum())
            depth_rows += len(rows)
            sources.append(torch.stack([torch.full_like(rows, view), rows // grid[1], rows % grid[1]], 1).int())
            top, bottom, left, right = sample.box
            views.append(torch.tensor([[view, top, left, bottom - top, right - left, 0]], dtype=torch.int32))
            ids.append(sample.id)
    if depth_rows == 0:
        raise ConfigError("no memory patch has a valid depth pixel")
    described = samples.describe()
    bank = MemoryBank(torch.cat(feats), torch.cat(targets), torch.cat(sources), torch.cat(views), {
        **pipeline.features.metadata(),
        "target_kind": "depth",
        "depth_encoding": encoding.metadata(),
        "memory_mean_depth": depth_sum / depth_rows,
        "input_size": pipeline.size,
        "protocol_preset": pipeline.protocol.name,
        "dataset": described["dataset"],
        "dataset_root": described["data_root"],
        "split": described["split"],
        "layout": described["layout"],
        "border": described["border"],
        "num_images": len(ids),
        "image_ids": ids,
        "memory_size": memory_size,
        "seed": seed,
        "augmentation": None,
        "feature_dtype": "float16" if fp16 else "float32",
        "build_seconds": round(time.perf_counter() - started, 3),
    })
    bank.check_finite("depth memory", "the backbone gave non-finite features (damaged weights? float16 overflow?)")
    return bank


class DepthEstimator:
    """A depth memory bank with the pipeline and decoder that query it. Build one with
    :meth:`from_examples`, :meth:`from_dataset` or :meth:`load`; :meth:`predict` answers metres."""

    def __init__(self, bank: MemoryBank, pipeline: Pipeline, search: SearchOptions | None = None,
                 bank_path: str | Path | None = None):
        check_target_kind(bank.metadata, "depth", str(bank_path or "memory bank"))
        self.bank, self.pipeline = bank, pipeline
        self.search = search or SearchOptions()
        self.bank_path = Path(bank_path) if bank_path is not None else None
        self.encoding = DepthEncoding.from_metadata(bank.metadata["depth_encoding"])
        self._decoder: HummingbirdDecoder | None = None

    # ------------------------------------------------------------------------- construction

    @classmethod
    def from_examples(cls, images: Sequence, depths: Sequence, *, encoding: str = DEFAULT_ENCODING,
                      bins: int = DEFAULT_DEPTH_BINS, bin_decode: str = "log-expectation", memory_size: int | None = None,
                      border: str | None = None, fp16: bool = False, progress: bool = False,
                      **keywords) -> DepthEstimator:
        """A memory of images (PIL, arrays, tensors or paths) and their depth maps ``(H, W)`` in metres (NaN,
        0 and negative values are invalid and never enter a target). ``encoding``: ``mean``, ``log-mean`` or
        ``bins`` (``bins`` K, ``bin_decode`` ``expectation`` or ``log-expectation``); ``border="nyu"``: the
        examples are NYU frames with their white border. Keywords: the pipeline's and decoder's, as for
        :meth:`hummingbird.Segmenter.from_examples` (``input_size``: the short side, default the backbone's)."""
        pipeline, search = _pipeline(dict(keywords, progress=progress))
        examples = DepthExamples(images, depths, border=border)
        bank = build_depth_bank(pipeline, examples, DepthEncoding(encoding, bins, decode=bin_decode), memory_size,
                                fp16)
        return cls(bank, pipeline, search)

    @classmethod
    def from_dataset(cls, kind: str, root: str | Path, split: str, *, fileset: str | Path | None = None,
                     depth_scale: float = 1000.0, encoding: str = DEFAULT_ENCODING, bins: int = DEFAULT_DEPTH_BINS,
                     bin_decode: str = "log-expectation", memory_size: int | None = None, fp16: bool = False,
                     **keywords) -> DepthEstimator:
        """A memory of an RGB-D dataset (``kind``: ``nyu`` or ``folder``; see
        :func:`~hummingbird.datasets.depth.open_depth_dataset`), restricted to the ids of ``fileset``."""
        pipeline, search = _pipeline(keywords)
        dataset = open_depth_dataset(kind, root, split, depth_scale=depth_scale, fileset=fileset)
        print(f"depth memory: {len(dataset)} images of {root} [{split}] ({dataset.layout} layout), "
              f"{pipeline.features.dim}-dim features", file=sys.stderr)
        bank = build_depth_bank(pipeline, dataset, DepthEncoding(encoding, bins, decode=bin_decode), memory_size,
                                fp16)
        return cls(bank, pipeline, search)

    @classmethod
    def load(cls, path: str | Path, **overrides) -> DepthEstimator:
        """Open a depth bank with the pipeline it was built with (``overrides``: decoder options such as
        ``k``, ``temperature``, ``index``, or pipeline settings checked against the bank). A bank of
        another target kind is refused in one line."""
        from hummingbird.memory.shards import open_bank

        bank = open_bank(path)
        check_target_kind(bank.metadata, "depth", str(path))
        bank = bank if isinstance(bank, MemoryBank) else bank.to_memory()
        settings, search = split_keywords(overrides)
        pipeline = resolve_pipeline(settings, bank.metadata, path)
        bank.check_compatible(pipeline.metadata(), source=str(path))
        return cls(bank, pipeline, search, bank_path=path)

    def save(self, path: str | Path) -> Path:
        """Write the bank (one ``.safetensors`` file recording ``target_kind = depth`` and the encoding)."""
        path = self.bank.save(path)
        self.bank_path = Path(path)
        return Path(path)

    # ------------------------------------------------------------------------- the memory

    @property
    def input_size(self) -> int:
        return self.pipeline.size

    @property
    def memory_mean_depth(self) -> float:
        """The constant baseline: the mean of the memory patches' mean depths, metres."""
        return float(self.bank.metadata["memory_mean_depth"])

    def decoder(self) -> HummingbirdDecoder:
        """The decoder over the memory's depth targets (the segmentation decoder's attention)."""
        if self._decoder is None:
            self._decoder = make_decoder(self.bank, k=self.search.k, temperature=self.search.temperature,
                                         index_spec=search_for(self.search.index, self.pipeline.protocol),
                                         nprobe=self.search.nprobe, seed=self.pipeline.settings.seed,
                                         refine=self.search.refine, device=self.pipeline.device)
        return self._decoder

    # ------------------------------------------------------------------------- queries

    def patch_depth(self, pixels: torch.Tensor) -> torch.Tensor:
        """Network inputs ``(B, 3, h_in, w_in)`` in [0, 1] → patch-grid depth ``(B, h, w)`` metres."""
        features = self.pipeline.features(pixels.to(self.pipeline.device)).cpu()
        return self.encoding.to_metres(self.decoder().patch_distributions(features))

    def _full(self, patch: torch.Tensor, sample: DepthSample) -> np.ndarray:
        top, bottom, left, right = sample.box
        region = upsample_depth(patch[None], (bottom - top, right - left))
        return fill_frame(region, sample.box, (sample.image.height, sample.image.width))[0].numpy()

    def predict(self, image, *, border: str | None = None) -> np.ndarray:
        """Depth ``(H, W)`` float32 in metres at the image's own size. ``border="nyu"``: the image is a NYU
        frame; only the region inside its white border is shown to the model (a 640×480 image)."""
        from hummingbird.datasets.examples import as_rgb

        picture = as_rgb(image, str(image) if isinstance(image, (str, Path)) else "image")
        p = self.pipeline.patch_size
        if min(picture.width, picture.height) < p:
            raise ConfigError(f"image is {picture.width}x{picture.height}, smaller than one {p}-px patch")
        sample = DepthSample("image", picture, np.zeros(0), np.zeros(0),
                             frame_box(picture.height, picture.width, border))
        pixels = _pixels(sample, model_input_shape(sample, self.pipeline.size, p))[None]
        return self._full(self.patch_depth(pixels)[0], sample)

    def predictions(self, samples, desc: str = "depth") -> Iterator[tuple[DepthSample, np.ndarray]]:
        """``(sample, depth (H, W) metres)`` for every sample of a dataset, in batches of equal input shape."""
        for batch, pixels in _batches(self.pipeline, samples, desc):
            for sample, patch in zip(batch, self.patch_depth(pixels)):
                yield sample, self._full(patch, sample)

    # ------------------------------------------------------------------------- evaluation

    def open_dataset(self, kind: str, root: str | Path, split: str, *, fileset: str | Path | None = None,
                     depth_scale: float = 1000.0):
        """An RGB-D split to evaluate (see :func:`~hummingbird.datasets.depth.open_depth_dataset`)."""
        return open_depth_dataset(kind, root, split, depth_scale=depth_scale, fileset=fileset)

    def evaluate(self, data, depths: Sequence | None = None, *, eigen_crop: str = "bts", min_depth: float = 1e-3,
                 max_depth: float = 10.0, border: str | None = None,
                 save_predictions: str | Path | None = None) -> dict:
        """Score the decoder and the constant baseline (the memory-mean depth everywhere) on a dataset (from
        :meth:`open_dataset`) or on images and depth maps in metres (``border`` as in :meth:`predict`).
        Returns ``{"metrics", "baseline_constant", "per_image", "settings", ...}`` in metres (metric
        conventions: :mod:`hummingbird.evaluation.depth_metrics`; defaults NYUv2's). ``save_predictions``:
        also write ``DIR/<id>.png`` (uint16 millimetres) and ``DIR/<id>_error.png`` (error maps)."""
        from hummingbird.visual.depth import error_maps, save_depth_png

        dataset = data if depths is None else DepthExamples(data, depths, border=border)
        options = DepthMetricOptions(eigen_crop, min_depth, max_depth)
        if save_predictions:
            refuse_overwriting(dataset, save_predictions)
        ours, constant = DepthScores(options), DepthScores(options)
        started, shapes = time.perf_counter(), set()
        for sample, depth in self.predictions(dataset, desc="evaluate depth"):
            shapes.add("x".join(map(str, model_input_shape(sample, self.pipeline.size, self.pipeline.patch_size)[::-1])))
            ours.update(sample.id, depth, sample.depth, sample.valid)
            constant.update(sample.id, np.full_like(depth, self.memory_mean_depth), sample.depth, sample.valid)
            if save_predictions:
                save_depth_png(depth, Path(save_predictions) / f"{sample.id}.png")
                m = ours.per_image[sample.id]
                error_maps(sample.image, sample.depth, sample.valid, depth,
                           Path(save_predictions) / f"{sample.id}_error.png",
                           f"{sample.id}: RMSE {m['rmse']:.3f} m, AbsRel {m['abs_rel']:.3f}, δ1 {m['delta1']:.3f}")
        described = dataset.describe()
        meta = self.bank.metadata
        overlap = sorted(set(meta.get("image_ids", [])) & set(ours.per_image))
        if overlap and meta.get("dataset_root") == described["data_root"] and described["data_root"] is not None:
            warnings.warn(f"{len(overlap)} of the {len(ours.per_image)} evaluated images are in the memory "
                          f"({', '.join(overlap[:3])}{' ...' if len(overlap) > 3 else ''}); their scores are "
                          f"optimistic", HummingbirdWarning, stacklevel=2)
        settings = {
            "task": "depth", "protocol": "hummingbird", **described,
            "encoding": self.encoding.label, "depth_encoding": self.encoding.metadata(),
            "k": self.search.k, "temperature": self.search.temperature,
            "index": search_for(self.search.index, self.pipeline.protocol),
            "search": getattr(self.decoder().index, "spec", None),
            "input_size": self.pipeline.size, "resize": "aspect (short side = input_size)",
            "input_shapes_wh": sorted(shapes), "upsampling": UPSAMPLING,
            "metrics": options.describe(), "memory_mean_depth": self.memory_mean_depth,
            "memory": {k: meta.get(k) for k in ("dataset", "dataset_root", "split", "layout", "num_images",
                                                 "num_patches", "memory_size")} | {"num_patches": len(self.bank)},
            "memory_overlap": len(overlap), "backbone": meta.get("backbone"), "weights": meta.get("weights"),
            "precision": self.pipeline.encoder.active_precision, "seed": self.pipeline.settings.seed,
        }
        return {
            "metrics": ours.result(), "baseline_constant": constant.result(),
            "metrics_pixel_pooled": ours.result(pooled=True),
            "baseline_constant_pixel_pooled": constant.result(pooled=True),
            "per_image": {i: {"metrics": m, "baseline_constant": constant.per_image[i], "scored_pixels": ours.pixels[i]}
                          for i, m in ours.per_image.items()},
            "num_images": len(ours.per_image), "seconds": round(time.perf_counter() - started, 3),
            "settings": settings,
        }
