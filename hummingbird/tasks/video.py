"""Video object segmentation by label propagation: the first frame's object mask carried through a video.

    from hummingbird import VideoPropagator
    prop = VideoPropagator.load(backbone="dinov2_vits14", weights="vits14.pth")   # protocol preset "dino"
    summary = prop.propagate_to("frames/", "first_mask.png", "out/")           # out/<frame stem>.png
    result = prop.evaluate(prop.open_dataset("DAVIS"), out_dir="predictions/")  # J&F, official columns

The memory of a video is small and changes with every frame: the patches of the first frame, with their
object ids from the given mask, and of the last ``n_last_frames`` frames, with their own *soft*
predictions (a distribution over the object ids per patch: target kind ``objects`` of
:mod:`hummingbird.memory.targets`). Every context frame's features are computed once, when the frame is
the query, and kept with its prediction in a :class:`~hummingbird.memory.video_context.ContextMemory`.

A query patch attends to the context patches inside a square window of radius ``neighbourhood`` patches
around its own position; the ``topk`` most similar of all context frames together (ties with the k-th
kept) answer, with the weights of the shared decoder's attention,
:func:`hummingbird.memory.decoder.soft_labels` (``softmax(s / τ)`` over the chosen rows: the same as
DINO's ``exp(s / τ)`` normalised over them). Only the choice of rows differs from an image memory's
k-nearest search: a window, and a top-k taken jointly over frames (computed in query tiles against the
context strips their windows reach, never as DINO's full frames × patches × patches block).

Protocol preset ``dino`` (:data:`VIDEO_PROTOCOLS`) reproduces DINO's ``eval_video_segmentation.py``
(checked against ``../shared/peers/dino-davis-reference`` by ``tests/test_dino_davis_reference.py``):

* frames decoded by OpenCV, resized bilinearly *on uint8* (``cv2.resize``) to short side 480 with the long
  side floored to a multiple of 64 (854×480 → 832×480), normalised with mean (0.485, 0.456, 0.406) and std
  (0.228, 0.224, 0.225), cut to the top-left multiple of the patch size (476×826 for patch 14);
* the first mask resized with PIL nearest straight from the frame size to the patch grid, one channel
  per id up to the largest id left there;
* context: the first frame + the last 7 soft predictions; window radius 12; top-5; τ = 0.1;
* answer: bilinear ×patch upsampling (``align_corners=False``), each channel min–max rescaled, argmax,
  PIL nearest stretch to the frame size; palette PNGs (DINO's palette, :func:`davis_palette`) with the
  first mask as frame 0.

DINO sizes square frames inconsistently (its frame and mask readers swap sides); here a square frame is
sized as the frame reader does, for both.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from hummingbird.datasets.davis import DavisDataset, FrameFolder, check_first_mask, read_object_mask, read_predictions
from hummingbird.errors import ConfigError, DatasetError
from hummingbird.evaluation.davis_metrics import DavisScores
from hummingbird.memory.targets import TARGET_KINDS
from hummingbird.memory.video_context import ContextMemory

TARGET_KIND = TARGET_KINDS["objects"]


@dataclass(frozen=True)
class VideoProtocol:
    """A label-propagation protocol preset (see the module docstring for ``dino``)."""

    name: str
    short_side: int = 480
    long_side_multiple: int = 64
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.228, 0.224, 0.225)
    n_last_frames: int = 7
    neighbourhood: int = 12
    topk: int = 5
    temperature: float = 0.1
    precision: str = "fp32"
    palette: str = "dino"

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """``(h, w)`` a ``height × width`` frame is resized to: short side :attr:`short_side`, the long side
        floored to a multiple of :attr:`long_side_multiple`."""
        s, m = self.short_side, self.long_side_multiple
        if height > width:
            return int((s * height / width) // m * m), s
        return s, int((s * width / height) // m * m)

    def describe(self) -> dict:
        return asdict(self) | {"frame_resize": "cv2.resize bilinear on uint8, short side, long side floored",
                               "mask_downsampling": "PIL nearest from the frame size to the patch grid",
                               "upsampling": "bilinear x patch (align_corners=False), per-channel min-max, argmax, "
                                             "PIL nearest to the frame size",
                               "context": "first frame (given mask) + last n_last_frames soft predictions",
                               "target_kind": TARGET_KIND.name}


VIDEO_PROTOCOLS = {"dino": VideoProtocol("dino")}


def video_protocol(name: str) -> VideoProtocol:
    if name not in VIDEO_PROTOCOLS:
        raise ConfigError(f"--protocol-preset {name}: video presets are {', '.join(VIDEO_PROTOCOLS)}")
    return VIDEO_PROTOCOLS[name]


def davis_palette(kind: str = "davis") -> np.ndarray:
    """A colour palette ``(256, 3)`` uint8 for object-id PNGs. ``davis``: the Pascal VOC colour map, as the
    DAVIS annotations and the official toolkit's results use; ``dino``: the palette DINO's script writes (the
    ``palette.txt`` it downloads from UVC): the VOC map for ids 0-21 with 192 written 191, then grey ``(i, i, i)``."""
    from hummingbird.datasets.palettes import voc_palette

    palette = voc_palette(256)
    if kind == "davis":
        return palette
    if kind != "dino":
        raise ConfigError(f"palette {kind!r}: use davis or dino")
    palette[palette == 192] = 191
    palette[22:] = np.repeat(np.arange(22, 256, dtype=np.uint8)[:, None], 3, axis=1)
    return palette


def save_ids_png(ids: np.ndarray, path: str | Path, palette: str = "davis") -> Path:
    """Write object ids ``(H, W)`` uint8 as a palette PNG (atomically; ``palette``: see :func:`davis_palette`)."""
    from hummingbird.files.atomic import save_image

    image = Image.fromarray(np.ascontiguousarray(ids, dtype=np.uint8))
    image.putpalette(davis_palette(palette).ravel().tolist())
    return save_image(image, path, format="PNG")


def first_mask_grid(ids: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """The first mask's ids resized with PIL nearest to ``grid = (h, w)`` → one-hot ``(C, h, w)`` float32,
    one channel per id up to the largest id there."""
    small = np.array(Image.fromarray(np.ascontiguousarray(ids, dtype=np.uint8)).resize(grid[::-1], Image.NEAREST))
    small = torch.from_numpy(small.astype(np.int64))
    return F.one_hot(small, int(small.max()) + 1).permute(2, 0, 1).float()


def norm_mask(soft: torch.Tensor) -> torch.Tensor:
    """DINO's per-channel rescale of ``(C, H, W)``: channels whose maximum is positive → ``(x - min) /
    max(x - min)``; others unchanged."""
    low = soft.amin(dim=(1, 2), keepdim=True)
    shifted = soft - low
    scaled = shifted / shifted.amax(dim=(1, 2), keepdim=True)
    return torch.where(soft.amax(dim=(1, 2), keepdim=True) > 0, scaled, soft)


def labels_from_soft(soft: torch.Tensor, patch_size: int, size: tuple[int, int]) -> np.ndarray:
    """Patch-grid soft segmentation ``(C, h, w)`` → object ids ``(H, W)`` uint8 at the frame ``size``."""
    up = F.interpolate(soft[None], scale_factor=patch_size, mode="bilinear", align_corners=False,
                       recompute_scale_factor=False)[0]
    ids = torch.max(norm_mask(up), dim=0)[1].to(torch.uint8).numpy()
    return np.array(Image.fromarray(ids).resize(size[::-1], Image.NEAREST))


@dataclass
class PropagatedFrame:
    """One frame's answer: its stem, object ids ``(H, W)`` uint8 and patch-grid soft segmentation."""

    stem: str
    labels: np.ndarray
    soft: torch.Tensor | None


class VideoPropagator:
    """A frozen backbone and a label-propagation protocol. Build one with :meth:`load` (or from a
    :class:`~hummingbird.models.backbones.PatchEncoder`); :meth:`propagate` answers each frame's object ids."""

    def __init__(self, encoder, protocol: str | VideoProtocol = "dino", *, max_frames: int | None = None,
                 progress: bool = False):
        self.encoder = encoder
        self.protocol = video_protocol(protocol) if isinstance(protocol, str) else protocol
        self.max_frames, self.progress = max_frames, progress
        self.tiling = {"band_rows": 6, "tile_cols": 20}  # query tiles of the windowed attention (speed only)

    @classmethod
    def load(cls, backbone: str | None = None, weights: str | Path | None = None, *, protocol: str = "dino",
             device: str = "auto", precision: str = "auto", pos_embed: str | None = None, compile: bool = False,
             max_frames: int | None = None, progress: bool = False, **options) -> VideoPropagator:
        """The backbone (a preset name and its weights, as for :class:`hummingbird.Segmenter`; environment
        ``HUMMINGBIRD_BACKBONE``/``HUMMINGBIRD_WEIGHTS`` honoured) with the protocol's normalisation and, for
        ``precision="auto"``, its precision (``dino``: fp32)."""
        from hummingbird.models.backbones import encoder_from_weights_file
        from hummingbird.settings import device_for

        spec = video_protocol(protocol)
        encoder = encoder_from_weights_file(backbone, weights, layer=-1, pos_embed=pos_embed,
                                            normalisation=(spec.mean, spec.std),
                                            precision=spec.precision if precision == "auto" else precision,
                                            **options)
        encoder = encoder.to(device_for(device))
        _ = encoder.active_precision  # an unsupported precision fails here, before any work
        if compile:
            encoder = encoder.compiled()
        return cls(encoder, spec, max_frames=max_frames, progress=progress)

    # ------------------------------------------------------------------------- inputs

    @property
    def patch_size(self) -> int:
        return self.encoder.patch_size

    def frame_input(self, bgr: np.ndarray, crop: bool = True) -> torch.Tensor:
        """A BGR uint8 frame → the network input ``(3, h, w)`` RGB in [0, 1]: the protocol's resize, cut to
        the top-left multiple of the patch size (``crop=False``: not cut)."""
        import cv2

        th, tw = self.protocol.network_size(*bgr.shape[:2])
        p = self.patch_size
        if th < p or tw < p:
            raise ConfigError(f"frames of {bgr.shape[1]}x{bgr.shape[0]} give a {tw}x{th} input, smaller than a "
                              f"{p}-px patch")
        resized = cv2.resize(bgr, (tw, th), interpolation=cv2.INTER_LINEAR)
        rgb = (resized.astype(np.float32) / 255.0)[:, :, ::-1]
        pixels = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
        return pixels[:, :th // p * p, :tw // p * p] if crop else pixels

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Network input ``(3, h_in, w_in)`` → patch tokens ``(h, w, D)`` float32 (not normalised)."""
        return self.encoder(pixels[None].to(self.encoder.device))[0].float()

    def grid(self, height: int, width: int) -> tuple[int, int]:
        th, tw = self.protocol.network_size(height, width)
        return th // self.patch_size, tw // self.patch_size

    # ------------------------------------------------------------------------- propagation

    def propagate(self, frames: FrameFolder | str | Path, first_mask: str | Path | np.ndarray,
                  keep_soft: bool = False, features_of: dict | None = None) -> Iterator[PropagatedFrame]:
        """Object ids of every frame of ``frames`` (a folder or :class:`FrameFolder`), frame 0 being the
        first mask itself (a palette PNG path or an ``(H, W)`` array of ids). ``keep_soft``: also return
        each frame's patch-grid soft segmentation; ``features_of``: a dict filled with each frame's raw patch
        features ``(h·w, D)`` (tests)."""
        video = frames if isinstance(frames, FrameFolder) else FrameFolder.open(frames)
        video = video.first(self.max_frames)
        if isinstance(first_mask, np.ndarray):
            ids, source = np.asarray(first_mask, dtype=np.uint8), "first mask"
        else:
            ids, void = read_object_mask(first_mask)
            ids, source = np.where(void, 0, ids).astype(np.uint8), first_mask
        check_first_mask(ids, source, video)
        spec = self.protocol
        height, width = ids.shape
        first = first_mask_grid(ids, self.grid(height, width))
        channels, h, w = first.shape
        device = self.encoder.device
        memory = None
        bar = tqdm(total=len(video), desc=f"propagate {video.folder.name}", disable=not self.progress,
                   unit="frame")
        for i in range(len(video)):
            tokens = self.features(self.frame_input(video.read(i)))
            if tokens.shape[:2] != (h, w):
                raise DatasetError(f"{video.frames[i]}: patch grid {tuple(tokens.shape[:2])} differs from the "
                                   f"first mask's {(h, w)}")
            raw = tokens.reshape(h * w, -1)
            if features_of is not None:
                features_of[video.stems[i]] = raw.cpu()
            unit = F.normalize(raw, dim=1).reshape(h, w, -1)
            if i == 0:
                memory = ContextMemory((h, w), unit.shape[-1], channels, 1 + spec.n_last_frames,
                                       spec.neighbourhood, spec.topk, spec.temperature, device=device,
                                       **self.tiling)
                memory.add(unit, first.to(device).permute(1, 2, 0))
                bar.update()
                yield PropagatedFrame(video.stems[0], ids, first if keep_soft else None)
                continue
            soft = memory.attend(unit)  # (h, w, C)
            memory.add(unit, soft)
            grid_soft = soft.permute(2, 0, 1).cpu()
            labels = labels_from_soft(grid_soft, self.patch_size, (height, width))
            bar.update()
            yield PropagatedFrame(video.stems[i], labels, grid_soft if keep_soft else None)
        bar.close()

    def propagate_to(self, frames: FrameFolder | str | Path, first_mask: str | Path, out_dir: str | Path,
                     summary: bool = True) -> dict:
        """Propagate and write ``out_dir/<frame stem>.png`` (palette PNGs of object ids) and, with
        ``summary``, ``out_dir/summary.json``; returns the summary."""
        from hummingbird.files.atomic import make_folder, write_json

        video = frames if isinstance(frames, FrameFolder) else FrameFolder.open(frames)
        out = make_folder(out_dir)
        inputs = {p.resolve() for p in video.frames} | ({Path(first_mask).resolve()}
                                                         if not isinstance(first_mask, np.ndarray) else set())
        for stem in video.first(self.max_frames).stems:
            if (out / f"{stem}.png").resolve() in inputs:
                raise ConfigError(f"{out / (stem + '.png')}: --out would write over an input file; choose "
                                  f"another folder")
        started = time.perf_counter()
        pixels = {}
        for frame in self.propagate(video, first_mask):
            save_ids_png(frame.labels, out / f"{frame.stem}.png", self.protocol.palette)
            present = np.unique(frame.labels)
            pixels[frame.stem] = {str(int(k)): int((frame.labels == k).sum()) for k in present if k}
        seconds = time.perf_counter() - started
        result = {"task": "video", "frames": str(video.folder), "first_mask": str(first_mask),
                  "num_frames": len(pixels), "seconds": round(seconds, 3),
                  "seconds_per_frame": round(seconds / max(1, len(pixels)), 4),
                  "object_pixels": pixels, "settings": self.settings()}
        if summary:
            write_json(out / "summary.json", result)
        return result

    # ------------------------------------------------------------------------- evaluation

    def open_dataset(self, root: str | Path, sequences=None, split: str | None = None) -> DavisDataset:
        """A DAVIS root (see :class:`~hummingbird.datasets.davis.DavisDataset`)."""
        return DavisDataset(root, sequences, split)

    def evaluate(self, dataset: DavisDataset, out_dir: str | Path | None = None) -> dict:
        """Propagate each sequence's first annotation and score J&F on its annotated frames (the official
        DAVIS-2017 semi-supervised evaluation: first and last frames excluded). ``out_dir``: also write
        ``out_dir/<seq>/<frame>.png``. Returns ``{"per_sequence", "global", "settings"}``."""
        scores = DavisScores()
        started = time.perf_counter()
        for seq in dataset.sequences:
            stems, gt, void = dataset.ground_truth(seq)
            frames = dataset.frames(seq).first(self.max_frames)
            keep = [i for i, s in enumerate(stems) if s in set(frames.stems)]
            stems, gt, void = [stems[i] for i in keep], gt[keep], void[keep]
            predicted = {}
            target = Path(out_dir) / seq if out_dir is not None else None
            for frame in self.propagate(frames, dataset.first_mask(seq)):
                predicted[frame.stem] = frame.labels
                if target is not None:
                    save_ids_png(frame.labels, target / f"{frame.stem}.png", self.protocol.palette)
            missing = [s for s in stems if s not in predicted]
            if missing:
                raise DatasetError(f"{dataset.annotations / seq / missing[0]}.png: annotated frame without a frame "
                                   f"in {dataset.images / seq}")
            scores.add(seq, gt, np.stack([predicted[s] for s in stems]), void)
            print(f"{seq}: J&F {scores.per_sequence()[seq]['JF_mean']:.4f}", file=sys.stderr)
        settings = {"task": "video", **dataset.describe(), **self.settings(),
                    "max_frames": self.max_frames, "seconds": round(time.perf_counter() - started, 3),
                    "metric": scores.describe()}
        return scores.result(settings)

    def settings(self) -> dict:
        meta = self.encoder.metadata()
        return {"protocol_preset": self.protocol.name, "protocol": self.protocol.describe(),
                "backbone": meta.get("backbone"), "weights": meta.get("weights"), "pos_embed": meta.get("pos_embed"),
                "precision": self.encoder.active_precision, "patch_size": self.patch_size}


def score_predictions(dataset: DavisDataset, predictions: str | Path) -> dict:
    """Score an existing results folder ``predictions/<seq>/<frame>.png`` (as the official toolkit does)."""
    scores = DavisScores()
    for seq in dataset.sequences:
        stems, gt, void = dataset.ground_truth(seq)
        scores.add(seq, gt, read_predictions(Path(predictions) / seq, stems, gt.shape[1:]), void)
    return scores.result({"task": "video", "predictions": str(predictions), **dataset.describe(),
                          "metric": scores.describe()})
