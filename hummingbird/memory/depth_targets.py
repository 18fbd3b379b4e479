"""Depth targets of memory rows (target kind ``depth``): per-patch targets from the valid pixels only,
and the way from aggregated targets back to metres.

A depth map ``(B, H, W)`` with its valid mask is cut by the ViT's patch grid ``(h, w)`` laid over the map
at its own resolution: pixel row ``r`` belongs to patch row ``r * h // H``, column ``c`` to ``c * w // W``
(exactly the ``p × p`` patches when ``H = h·p``). The image is resized for the ViT, the depth never is, so
invalid pixels and depth edges are never interpolated. A patch without a valid pixel has no target and
is not stored.

Encodings (``DepthEncoding``), each one target vector ``(T,)`` per row:

* ``mean`` — the mean valid depth in metres (T = 1); decoded as it is;
* ``log-mean`` — the mean of log depth (T = 1); decoded by ``exp``: the decoder's weighted average becomes
  a weighted geometric mean of the neighbours' depths;
* ``bins`` — the distribution of the patch's valid depths over ``K`` log-spaced bins between the memory's
  smallest and largest valid depth (T = K, hard assignment; bin centres are the geometric means of their
  edges); decoded by ``expectation`` (Σ p·c, equal to ``mean`` up to the quantisation: both are linear) or
  ``log-expectation`` (exp Σ p·log c, equal to ``log-mean`` up to the quantisation).

The decoder aggregates any of them the same way (:func:`hummingbird.memory.decoder.soft_labels`); the
aggregated patch grid is decoded to metres ``(B, h, w)`` and upsampled bilinearly (``align_corners=False``,
:func:`upsample_depth`) — values, no argmax. Vectorised with ``bincount``; no loop over patches or pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hummingbird.catalog import DEFAULT_DEPTH_BINS as DEFAULT_BINS
from hummingbird.catalog import DEFAULT_DEPTH_ENCODING
from hummingbird.catalog import DEPTH_BIN_DECODES as BIN_DECODES
from hummingbird.catalog import DEPTH_ENCODINGS as ENCODINGS
from hummingbird.errors import ConfigError


def patch_index(height: int, width: int, grid: tuple[int, int]) -> torch.Tensor:
    """``(H, W)`` int64: the flat patch index ``row * w + col`` of every pixel of an ``H × W`` map."""
    h, w = grid
    if not (0 < h <= height and 0 < w <= width):
        raise ConfigError(f"patch grid {h}x{w} does not fit a {height}x{width} depth map")
    rows = torch.arange(height) * h // height
    cols = torch.arange(width) * w // width
    return rows[:, None] * w + cols[None, :]


def _batch(depth, valid) -> tuple[torch.Tensor, torch.Tensor]:
    depth = torch.as_tensor(depth, dtype=torch.float32)
    depth = depth[None] if depth.ndim == 2 else depth
    valid = torch.isfinite(depth) & (depth > 0) if valid is None else torch.as_tensor(valid, dtype=torch.bool)
    valid = (valid[None] if valid.ndim == 2 else valid) & torch.isfinite(depth) & (depth > 0)
    if depth.ndim != 3 or valid.shape != depth.shape:
        raise ConfigError(f"depth {tuple(depth.shape)} and valid mask {tuple(valid.shape)}: expected the same "
                          f"(B, H, W) or (H, W) shape")
    return depth, valid


def patch_sums(values: torch.Tensor, valid: torch.Tensor, grid: tuple[int, int], channels: torch.Tensor | None = None,
               num_channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-patch sums of ``values (B, H, W)`` over the valid pixels → ``(B, h, w, C)`` float64 sums and
    ``(B, h, w)`` valid-pixel counts. ``channels (B, H, W)`` int64: each pixel's channel (a bin), else one."""
    b, height, width = values.shape
    n = b * grid[0] * grid[1]
    ids = (torch.arange(b)[:, None] * (grid[0] * grid[1]) + patch_index(height, width, grid).reshape(1, -1)).reshape(-1)
    keep = valid.reshape(-1)
    ids, weights = ids[keep], values.reshape(-1)[keep].double()
    counts = torch.bincount(ids, minlength=n).double()
    if channels is not None:
        ids = ids * num_channels + channels.reshape(-1)[keep]
    sums = torch.bincount(ids, weights=weights, minlength=n * num_channels)
    return sums.reshape(b, *grid, num_channels), counts.reshape(b, *grid)


def patch_mean_depth(depth, valid=None, *, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean valid depth per patch ``(B, h, w)`` float32 (0 where no valid pixel) and ``(B, h, w)`` bool:
    whether the patch has a valid pixel. ``depth``: ``(B, H, W)`` or ``(H, W)`` metres."""
    depth, valid = _batch(depth, valid)
    sums, counts = patch_sums(depth, valid, grid)
    return (sums[..., 0] / counts.clamp_min(1)).float(), counts > 0


@dataclass(frozen=True)
class DepthEncoding:
    """What a depth memory row holds (see the module): ``name`` in :data:`ENCODINGS`; for ``bins``, ``bins``
    (K), the log-spaced range ``low``–``high`` in metres and ``decode`` in :data:`BIN_DECODES`."""

    name: str = DEFAULT_DEPTH_ENCODING
    bins: int = DEFAULT_BINS
    low: float | None = None
    high: float | None = None
    decode: str = "log-expectation"

    def __post_init__(self):
        if self.name not in ENCODINGS:
            raise ConfigError(f"depth encoding {self.name!r}: use one of {', '.join(ENCODINGS)}")
        if self.name == "bins":
            if self.bins < 2:
                raise ConfigError(f"--depth-bins {self.bins}: need at least 2 bins")
            if self.decode not in BIN_DECODES:
                raise ConfigError(f"--bin-decode {self.decode!r}: use one of {', '.join(BIN_DECODES)}")
            if self.low is not None and not 0 < self.low < self.high:
                raise ConfigError(f"depth bins {self.low}..{self.high} m: need 0 < low < high")

    @property
    def width(self) -> int:
        """``T``, floats per memory row."""
        return self.bins if self.name == "bins" else 1

    @property
    def label(self) -> str:
        """``mean``, ``log-mean`` or ``bins64-log-expectation``: how results name the encoding."""
        return f"bins{self.bins}-{self.decode}" if self.name == "bins" else self.name

    def with_range(self, low: float, high: float) -> DepthEncoding:
        """For ``bins`` without a range: bins spanning ``low``–``high`` metres (the memory's valid depths)."""
        if self.name != "bins" or self.low is not None:
            return self
        high = max(high, low * 1.001)  # a memory of one depth still gets K distinct bins
        return DepthEncoding(self.name, self.bins, float(low), float(high), self.decode)

    def edges(self) -> torch.Tensor:
        """``(K + 1,)`` float64 log-spaced bin edges in metres."""
        if self.low is None:
            raise ConfigError("depth bins have no range yet (DepthEncoding.with_range)")
        return torch.logspace(math.log10(self.low), math.log10(self.high), self.bins + 1, dtype=torch.float64)

    def centres(self) -> torch.Tensor:
        """``(K,)`` float64 geometric bin centres in metres."""
        edges = self.edges()
        return torch.sqrt(edges[:-1] * edges[1:])

    def targets(self, depth, valid=None, *, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Depth ``(B, H, W)`` (or ``(H, W)``) metres + valid mask → targets ``(B, h, w, T)`` float32 and
        ``(B, h, w)`` bool: the patches that have a valid pixel (the others' targets are 0)."""
        depth, valid = _batch(depth, valid)
        if self.name == "mean":
            sums, counts = patch_sums(depth, valid, grid)
        elif self.name == "log-mean":
            sums, counts = patch_sums(torch.log(depth.clamp_min(1e-12)), valid, grid)
        else:
            # bucketize against the inner edges: below the range → bin 0, above → bin K-1
            index = torch.bucketize(depth.double(), self.edges()[1:-1], right=True)
            sums, counts = patch_sums(torch.ones_like(depth), valid, grid, channels=index, num_channels=self.bins)
        return (sums / counts.clamp_min(1)[..., None]).float(), counts > 0

    def to_metres(self, aggregated: torch.Tensor) -> torch.Tensor:
        """Aggregated targets ``(..., T)`` → depth ``(...)`` in metres."""
        if aggregated.shape[-1] != self.width:
            raise ConfigError(f"targets have {aggregated.shape[-1]} values per row, the {self.label} encoding "
                              f"{self.width}")
        if self.name == "mean":
            return aggregated[..., 0].float()
        if self.name == "log-mean":
            return torch.exp(aggregated[..., 0].double()).float()
        p = aggregated.double() / aggregated.double().sum(-1, keepdim=True).clamp_min(1e-30)
        centres = self.centres().to(aggregated.device)
        if self.decode == "expectation":
            return (p * centres).sum(-1).float()
        return torch.exp((p * torch.log(centres)).sum(-1)).float()

    def metadata(self) -> dict:
        """The bank's record of the encoding."""
        if self.name != "bins":
            return {"name": self.name}
        return {"name": self.name, "bins": self.bins, "low": self.low, "high": self.high, "spacing": "log",
                "decode": self.decode}

    @classmethod
    def from_metadata(cls, record: dict) -> DepthEncoding:
        if record.get("name") != "bins":
            return cls(record.get("name", "mean"))
        return cls("bins", int(record["bins"]), float(record["low"]), float(record["high"]),
                   record.get("decode", "log-expectation"))


def upsample_depth(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Patch-grid depth ``(B, h, w)`` → ``(B, H, W)``: bilinear with half-pixel centres
    (``align_corners=False``), each patch's value at the centre of the pixels it covers, edges replicated."""
    return F.interpolate(depth[:, None].float(), size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def fill_frame(depth: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int]) -> torch.Tensor:
    """Depth ``(B, bottom - top, right - left)`` of the region ``box = (top, bottom, left, right)`` of a frame
    of ``size = (H, W)`` → ``(B, H, W)``, the rest of the frame (a border) filled by replicating the edge."""
    top, bottom, left, right = box
    if (top, bottom, left, right) == (0, size[0], 0, size[1]):
        return depth
    pad = (left, size[1] - right, top, size[0] - bottom)
    return F.pad(depth[:, None], pad, mode="replicate")[:, 0]
