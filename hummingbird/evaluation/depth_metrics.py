"""Monocular depth metrics as the NYUv2 literature computes them (BTS ``bts_eval.py``, AdaBins ``evaluate.py``).

On the scored pixels of one image — ground truth valid, ``min_depth < gt < max_depth`` (both strict), inside
the Eigen crop when one is chosen — with ``g`` the ground truth and ``p`` the prediction in metres, the
prediction first clipped to ``[min_depth, max_depth]`` (NaN → min, +inf → max, as BTS does):

* ``rmse``    = √mean((g − p)²), metres;
* ``abs_rel`` = mean(|g − p| / g);
* ``log10``   = mean(|log₁₀ g − log₁₀ p|);
* ``delta1/2/3`` = share of pixels with max(g/p, p/g) < 1.25, 1.25², 1.25³.

A dataset's numbers are the **mean over images of each image's metrics** (BTS, AdaBins and DenseDepth all
do this; the reported RMSE is the mean of per-image RMSEs, not the RMSE of all pixels pooled, which
:meth:`DepthScores.result` gives with ``pooled=True`` as a diagnostic).

Eigen crops of a 640×480 NYU map (``(top, bottom, left, right)``, stop exclusive): ``bts`` =
``[45:471, 41:601]`` (BTS and AdaBins, 426×560; the default), ``densedepth`` = ``[20:460, 24:616]``
(DenseDepth's ``eigen_test_crop``, 440×592), ``none``. Numbers under different crops are not comparable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from hummingbird.errors import ConfigError, DatasetError

METRIC_NAMES = ("rmse", "abs_rel", "log10", "delta1", "delta2", "delta3")
LOWER_IS_BETTER = {"rmse": True, "abs_rel": True, "log10": True, "delta1": False, "delta2": False, "delta3": False}
EIGEN_CROPS = {"bts": (45, 471, 41, 601), "densedepth": (20, 460, 24, 616), "none": None}  # catalog.EIGEN_CROP_NAMES
NYU_SIZE = (480, 640)


@dataclass(frozen=True)
class DepthMetricOptions:
    """Which pixels are scored: the Eigen crop (a name of :data:`EIGEN_CROPS`) and the depth range in metres
    (defaults: NYUv2's convention)."""

    eigen_crop: str = "bts"
    min_depth: float = 1e-3
    max_depth: float = 10.0

    def __post_init__(self):
        if self.eigen_crop not in EIGEN_CROPS:
            raise ConfigError(f"--eigen-crop {self.eigen_crop}: use one of {', '.join(EIGEN_CROPS)}")
        if not 0 <= self.min_depth < self.max_depth:
            raise ConfigError(f"--min-depth {self.min_depth} / --max-depth {self.max_depth}: need 0 <= min < max")

    def describe(self) -> dict:
        """The conventions, named for a results file."""
        crop = EIGEN_CROPS[self.eigen_crop]
        return {**asdict(self), "eigen_crop_rows_cols": list(crop) if crop else None,
                "scored": f"valid ground truth with {self.min_depth} < gt < {self.max_depth} m"
                          + (f", inside the {self.eigen_crop} Eigen crop" if crop else ""),
                "prediction_clipped_to": [self.min_depth, self.max_depth],
                "averaging": "per-image metrics, mean over images (BTS/AdaBins)"}


def scored_mask(gt: np.ndarray, valid: np.ndarray | None, options: DepthMetricOptions, name: str) -> np.ndarray:
    """Bool ``(H, W)``: the pixels of ground truth ``gt (H, W)`` that are scored."""
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(gt) & (gt > options.min_depth) & (gt < options.max_depth)
    if valid is not None:
        if valid.shape != gt.shape:
            raise ConfigError(f"{name}: valid mask {valid.shape} does not match the ground truth {gt.shape}")
        mask &= valid.astype(bool)
    crop = EIGEN_CROPS[options.eigen_crop]
    if crop is not None:
        if gt.shape != NYU_SIZE:
            raise ConfigError(f"{name}: the {options.eigen_crop} Eigen crop is defined for 640x480 NYU depth, this "
                              f"map is {gt.shape[1]}x{gt.shape[0]}; use --eigen-crop none")
        top, bottom, left, right = crop
        inside = np.zeros_like(mask)
        inside[top:bottom, left:right] = True
        mask &= inside
    return mask


class _Sums:
    """Pixel sums from which every metric follows (over any set of pixels)."""

    def __init__(self):
        self.n, self.sq, self.rel, self.log10 = 0, 0.0, 0.0, 0.0
        self.deltas = [0, 0, 0]

    def add(self, p: np.ndarray, g: np.ndarray) -> None:
        ratio = np.maximum(g / p, p / g)
        self.n += g.size
        self.sq += float(np.sum((g - p) ** 2))
        self.rel += float(np.sum(np.abs(g - p) / g))
        self.log10 += float(np.sum(np.abs(np.log10(g) - np.log10(p))))
        for i, threshold in enumerate((1.25, 1.25 ** 2, 1.25 ** 3)):
            self.deltas[i] += int(np.count_nonzero(ratio < threshold))

    def metrics(self) -> dict[str, float]:
        n = self.n
        return {"rmse": math.sqrt(self.sq / n), "abs_rel": self.rel / n, "log10": self.log10 / n,
                "delta1": self.deltas[0] / n, "delta2": self.deltas[1] / n, "delta3": self.deltas[2] / n}


def _pixels(pred, gt, valid, options: DepthMetricOptions, name: str) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ConfigError(f"{name}: prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    mask = scored_mask(gt, None if valid is None else np.asarray(valid), options, name)
    if not mask.any():
        raise DatasetError(f"{name}: no pixel to score (no valid ground truth in ({options.min_depth}, "
                           f"{options.max_depth}) m{' inside the Eigen crop' if EIGEN_CROPS[options.eigen_crop] else ''})")
    p = pred[mask]
    p = np.where(np.isnan(p), options.min_depth, p)
    p = np.clip(np.where(np.isposinf(p), options.max_depth, p), options.min_depth, options.max_depth)
    return p, gt[mask]


def depth_metrics(pred, gt, valid=None, options: DepthMetricOptions = DepthMetricOptions(),
                  name: str = "image") -> dict[str, float]:
    """The six metrics of one image: ``pred``, ``gt`` ``(H, W)`` metres, ``valid`` ``(H, W)`` bool."""
    sums = _Sums()
    sums.add(*_pixels(pred, gt, valid, options, name))
    return sums.metrics()


class DepthScores:
    """Accumulates per-image metrics (and pixel-pooled sums) over a dataset."""

    def __init__(self, options: DepthMetricOptions = DepthMetricOptions()):
        self.options = options
        self.per_image: dict[str, dict[str, float]] = {}
        self.pixels: dict[str, int] = {}
        self._pooled = _Sums()

    def update(self, image_id: str, pred, gt, valid=None) -> dict[str, float]:
        """Score one image ``(H, W)``; returns its metrics."""
        p, g = _pixels(pred, gt, valid, self.options, image_id)
        sums = _Sums()
        sums.add(p, g)
        self._pooled.add(p, g)
        self.per_image[image_id] = sums.metrics()
        self.pixels[image_id] = sums.n
        return self.per_image[image_id]

    def result(self, pooled: bool = False) -> dict[str, float]:
        """Mean over images of the per-image metrics (``pooled``: the metrics of all scored pixels at once)."""
        if not self.per_image:
            raise ConfigError("no image was scored")
        if pooled:
            return self._pooled.metrics()
        return {k: float(np.mean([m[k] for m in self.per_image.values()])) for k in METRIC_NAMES}


def format_depth_scores(result: dict) -> str:
    """The human-readable table of a depth evaluation result: decoder and constant baseline per metric."""
    names = {"rmse": "RMSE (m)", "abs_rel": "AbsRel", "log10": "log10", "delta1": "δ < 1.25",
             "delta2": "δ < 1.25²", "delta3": "δ < 1.25³"}
    lines = [f"{'metric':<12} {'decoder':>9} {'constant':>9}   better"]
    for key in METRIC_NAMES:
        ours, base = result["metrics"][key], result["baseline_constant"][key]
        wins = ours < base if LOWER_IS_BETTER[key] else ours > base
        arrow = "↓" if LOWER_IS_BETTER[key] else "↑"
        lines.append(f"{names[key] + ' ' + arrow:<12} {ours:9.4f} {base:9.4f}   {'decoder' if wins else 'constant'}")
    settings = result.get("settings", {})
    lines.append(f"\n{result.get('num_images', '?')} images; constant = memory-mean depth "
                 f"{settings.get('memory_mean_depth', float('nan')):.3f} m; "
                 f"{settings.get('metrics', {}).get('scored', '')}; per-image metrics averaged over images")
    return "\n".join(lines)
