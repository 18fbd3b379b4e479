"""J&F of video object segmentation, as the official DAVIS-2017 evaluation computes it.

* **J** (region similarity): the IoU of an object's predicted and true pixels, void pixels left out; 1
  when both are empty.
* **F** (boundary accuracy): the F-measure of the two masks' boundaries. A boundary pixel is a mask pixel
  that differs from its east, south or south-east neighbour (outside the frame counts as background,
  except on the last row and column, which compare along the edge only; the bottom-right pixel is never
  one). A boundary pixel matches when the other boundary lies within a disk of radius
  ``ceil(bound_th · ‖(H, W)‖)`` pixels (``bound_th = 0.008``: 8 px at 854×480). Precision and recall are the
  matched fractions; an empty boundary on one side gives precision or recall 1 as the toolkit does.
* Per object: over the frames **except the first and the last**, the mean, the recall (fraction of frames
  above 0.5) and the decay (mean of the first minus mean of the last of 4 quantised bins of frames).
* Per sequence: the mean of its objects' statistics; global: the mean over all objects, ``JF_mean`` =
  (J_mean + F_mean) / 2. Objects are ids 1…max of the first annotation; predicted ids above that are refused,
  objects never predicted score 0.

Vectorised numpy (no SciPy, OpenCV or scikit-image): the disk dilation is a union of horizontal running
maxima (cumulative sums) shifted by rows.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from hummingbird.errors import DatasetError

BOUND_TH = 0.008
KEYS = ("J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay", "JF_mean")
DECAY_BINS = 4
CHUNK_FRAMES = 16  # frames dilated at once (bounds the int32 cumulative sums)


def region_similarity(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> np.ndarray:
    """J of boolean masks ``(..., H, W)`` → ``(...)``: IoU over non-void pixels, 1 when the union is empty."""
    gt, pred = gt.astype(bool), pred.astype(bool)
    keep = ~void.astype(bool) if void is not None else np.ones_like(gt)
    inter = ((gt & pred) & keep).sum(axis=(-2, -1))
    union = ((gt | pred) & keep).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        j = inter / union
    return np.where(union == 0, 1.0, j)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of boolean masks ``(..., H, W)`` (the toolkit's ``seg2bmap`` at full size)."""
    seg = mask.astype(bool)
    east, south, south_east = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    east[..., :, :-1] = seg[..., :, 1:]
    south[..., :-1, :] = seg[..., 1:, :]
    south_east[..., :-1, :-1] = seg[..., 1:, 1:]
    b = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    b[..., -1, :] = seg[..., -1, :] ^ east[..., -1, :]
    b[..., :, -1] = seg[..., :, -1] ^ south[..., :, -1]
    b[..., -1, -1] = False
    return b


def disk_offsets(radius: float) -> list[tuple[int, int]]:
    """``(dy, half_width)`` rows of the disk ``dx² + dy² ≤ radius²`` (scikit-image's ``disk``)."""
    r = math.floor(radius)
    rows = []
    for dy in range(-r, r + 1):
        left = radius * radius - dy * dy
        rows.append((dy, math.isqrt(math.floor(left)) if left >= 0 else -1))
    return [(dy, w) for dy, w in rows if w >= 0]


def _row_dilation(b: np.ndarray, half: int) -> np.ndarray:
    """Running OR over ``[x - half, x + half]`` along the last axis (zero outside)."""
    if half == 0:
        return b
    c = np.zeros((*b.shape[:-1], b.shape[-1] + 2 * half + 1), np.int32)
    np.cumsum(b, axis=-1, out=c[..., half + 1:half + 1 + b.shape[-1]])
    c[..., half + 1 + b.shape[-1]:] = c[..., half + b.shape[-1]:half + 1 + b.shape[-1]]
    return (c[..., 2 * half + 1:] - c[..., :b.shape[-1]]) > 0


def dilate_disk(b: np.ndarray, radius: float) -> np.ndarray:
    """Binary dilation of ``b (..., H, W)`` by a disk of ``radius`` (pixels outside the frame are 0)."""
    rows = disk_offsets(radius)
    widths = {w: _row_dilation(b, w) for w in {w for _, w in rows}}
    out = np.zeros_like(b, dtype=bool)
    h = b.shape[-2]
    for dy, w in rows:  # out[y] |= rowdil_w[y + dy]
        src = widths[w]
        if dy >= 0:
            out[..., :h - dy, :] |= src[..., dy:, :]
        else:
            out[..., -dy:, :] |= src[..., :h + dy, :]
    return out


def boundary_measure(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None,
                     bound_th: float = BOUND_TH) -> np.ndarray:
    """F of boolean masks ``(..., H, W)`` → ``(...)`` (see the module docstring)."""
    gt, pred = gt.astype(bool), pred.astype(bool)
    if void is not None:
        keep = ~void.astype(bool)
        gt, pred = gt & keep, pred & keep
    radius = bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*gt.shape[-2:]))
    fg_b, gt_b = boundary_map(pred), boundary_map(gt)
    fg_match = (fg_b & dilate_disk(gt_b, radius)).sum(axis=(-2, -1))
    gt_match = (gt_b & dilate_disk(fg_b, radius)).sum(axis=(-2, -1))
    n_fg, n_gt = fg_b.sum(axis=(-2, -1)), gt_b.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_fg == 0, 1.0, fg_match / np.maximum(n_fg, 1))
        recall = np.where(n_gt == 0, 1.0, gt_match / np.maximum(n_gt, 1))
        precision = np.where((n_fg > 0) & (n_gt == 0), 0.0, precision)
        recall = np.where((n_fg == 0) & (n_gt > 0), 0.0, recall)
        f = 2 * precision * recall / (precision + recall)
    return np.where(precision + recall == 0, 0.0, f)


def statistics(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, recall (fraction > 0.5) and decay (4 quantised bins: first bin's mean − last bin's) of one
    object's per-frame values, as the toolkit's ``db_statistics`` (NaNs ignored)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    mean = float(np.nanmean(v))
    recall = float(np.nanmean(v > 0.5))
    ids = (np.round(np.linspace(1, len(v), DECAY_BINS + 1) + 1e-10) - 1).astype(np.int64)
    bins = [v[ids[i]:ids[i + 1] + 1] for i in range(DECAY_BINS)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN bin
        decay = float(np.nanmean(bins[0]) - np.nanmean(bins[-1]))
    return mean, recall, decay


def object_masks(ids: np.ndarray, objects: int) -> np.ndarray:
    """Ids ``(T, H, W)`` → ``(objects, T, H, W)`` bool, object ``o`` at ``[o - 1]``."""
    return ids[None] == np.arange(1, objects + 1, dtype=ids.dtype)[:, None, None, None]


def sequence_scores(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, sequence: str = "sequence",
                    bound_th: float = BOUND_TH) -> tuple[np.ndarray, np.ndarray]:
    """Per-object, per-frame J and F ``(objects, T - 2)`` of one sequence (ids ``(T, H, W)``; first and last
    frames excluded)."""
    if gt.shape != pred.shape:
        raise DatasetError(f"{sequence}: predictions of shape {pred.shape} for annotations of shape {gt.shape}")
    if len(gt) < 3:
        raise DatasetError(f"{sequence}: {len(gt)} annotated frames; J&F leaves out the first and last, so at "
                           f"least 3 are needed")
    first = gt[0][(void[0] == 0) if void is not None else slice(None)]
    objects = int(first.max()) if first.size else 0
    if objects == 0:
        raise DatasetError(f"{sequence}: the first annotation holds no object")
    gt_void = void if void is not None else np.zeros(gt.shape, bool)
    gt = np.where(gt_void, 0, gt)
    if int(pred.max()) > objects:
        raise DatasetError(f"{sequence}: a prediction holds object id {int(pred.max())}, the sequence has "
                           f"{objects} object(s)")
    j = np.zeros((objects, len(gt) - 2))
    f = np.zeros((objects, len(gt) - 2))
    for start in range(1, len(gt) - 1, CHUNK_FRAMES):
        sl = slice(start, min(start + CHUNK_FRAMES, len(gt) - 1))
        g, p = object_masks(gt[sl], objects), object_masks(pred[sl], objects)
        v = gt_void[sl][None]
        j[:, sl.start - 1:sl.stop - 1] = region_similarity(g, p, v)
        f[:, sl.start - 1:sl.stop - 1] = boundary_measure(g, p, v, bound_th)
    return j, f


class DavisScores:
    """Accumulates sequences' J&F and reports them in the official toolkit's columns."""

    def __init__(self, bound_th: float = BOUND_TH):
        self.bound_th = bound_th
        self.objects: dict[str, dict[str, float]] = {}  # "<seq>_<id>" → statistics
        self.sequences: dict[str, list[str]] = {}

    def add(self, sequence: str, gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> None:
        j, f = sequence_scores(gt, pred, void, sequence, self.bound_th)
        names = []
        for o in range(len(j)):
            jm, jr, jd = statistics(j[o])
            fm, fr, fd = statistics(f[o])
            name = f"{sequence}_{o + 1}"
            self.objects[name] = {"J_mean": jm, "J_recall": jr, "J_decay": jd, "F_mean": fm, "F_recall": fr,
                                  "F_decay": fd, "JF_mean": (jm + fm) / 2}
            names.append(name)
        self.sequences[sequence] = names

    @staticmethod
    def _mean(rows: list[dict]) -> dict:
        out = {k: float(np.mean([r[k] for r in rows])) for k in KEYS if k != "JF_mean"}
        out["JF_mean"] = (out["J_mean"] + out["F_mean"]) / 2
        return {k: out[k] for k in KEYS}

    def per_sequence(self) -> dict:
        return {seq: self._mean([self.objects[n] for n in names]) for seq, names in self.sequences.items()}

    def global_scores(self) -> dict:
        if not self.objects:
            raise DatasetError("no sequence was scored")
        return self._mean(list(self.objects.values()))

    def describe(self) -> dict:
        return {"J": "region IoU, void excluded", "F": f"boundary F-measure, disk tolerance bound_th={self.bound_th}",
                "frames": "first and last annotated frames excluded", "decay_bins": DECAY_BINS,
                "global": "mean over objects; JF_mean = (J_mean + F_mean) / 2",
                "per_sequence": "mean over the sequence's objects", "objects": len(self.objects)}

    def result(self, settings: dict) -> dict:
        """``{"per_sequence": {seq: {J_mean, ...}}, "global": {...}, "settings": settings}``."""
        return {"per_sequence": self.per_sequence(), "global": self.global_scores(), "settings": settings}
