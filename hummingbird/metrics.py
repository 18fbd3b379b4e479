"""Segmentation metrics from a confusion matrix accumulated image by image."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


class ConfusionMatrix:
    """Accumulates a ``(C, C)`` int64 confusion matrix (rows: ground truth, columns: prediction).

    Pixels whose ground truth is ``ignore_index`` are skipped; only the matrix is kept, never masks.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        """Add ``predictions`` and ``targets`` of equal shape ``(B, H, W)``."""
        if predictions.shape != targets.shape:
            raise ValueError(f"prediction shape {tuple(predictions.shape)} != target shape {tuple(targets.shape)}")
        c = self.num_classes
        targets, predictions = targets.reshape(-1).long().cpu(), predictions.reshape(-1).long().cpu()
        keep = targets != self.ignore_index
        targets, predictions = targets[keep], predictions[keep]
        if targets.numel() and (targets.min() < 0 or targets.max() >= c):
            raise ValueError(f"target values outside [0, {c}) and not {self.ignore_index}")
        self.matrix += torch.bincount(targets * c + predictions.clamp(0, c - 1), minlength=c * c).view(c, c)

    def merge(self, other: "ConfusionMatrix") -> None:
        self.matrix += other.matrix


def scores(matrix: torch.Tensor | np.ndarray, class_names: list[str] | None = None) -> dict:
    """mIoU, per-class IoU, pixel accuracy and mean class accuracy of a confusion matrix.

    IoU of class c is ``TP / (TP + FP + FN)``; classes that appear neither in the ground truth nor in
    the predictions (union 0) are reported as ``None`` and left out of the mean.
    """
    m = torch.as_tensor(matrix, dtype=torch.float64)
    tp = m.diag()
    gt, pred = m.sum(1), m.sum(0)
    union = gt + pred - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.nan)
    acc = torch.where(gt > 0, tp / gt.clamp_min(1), torch.nan)
    names = class_names or [f"class_{i}" for i in range(len(tp))]
    return {
        "mIoU": _nanmean(iou),
        "pixel_accuracy": float(tp.sum() / m.sum()) if m.sum() > 0 else float("nan"),
        "mean_accuracy": _nanmean(acc),
        "per_class_iou": {n: (None if torch.isnan(v) else float(v)) for n, v in zip(names, iou)},
    }


def hungarian_scores(matrix: torch.Tensor | np.ndarray, class_names: list[str] | None = None) -> dict:
    """:func:`scores` after relabelling predictions by the one-to-one class matching that maximises
    correctly labelled pixels (scipy's Hungarian solver), as open-hummingbird-eval reports."""
    m = np.asarray(matrix, dtype=np.int64)
    gt_idx, pred_idx = linear_sum_assignment(m, maximize=True)
    matched = m[:, pred_idx[np.argsort(gt_idx)]]  # column j is now the prediction matched to class j
    out = scores(matched, class_names)
    out["matching"] = {int(p): int(g) for g, p in zip(gt_idx, pred_idx)}
    return out


def _nanmean(values: torch.Tensor) -> float:
    finite = values[~torch.isnan(values)]
    return float(finite.mean()) if finite.numel() else float("nan")
