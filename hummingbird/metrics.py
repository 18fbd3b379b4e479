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

    The plain mIoU: no matching; IoU of class c is ``TP / (TP + FP + FN)``; classes that appear neither
    in the ground truth nor in the predictions (union 0) are reported as ``None`` and left out of the mean.
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


def open_hbird_hungarian_scores(matrix: torch.Tensor | np.ndarray, class_names: list[str] | None = None) -> dict:
    """The Hungarian-matched mIoU that open-hummingbird-eval 2.0.0 reports.

    Predicted classes are matched one-to-one to ground-truth classes by the assignment that maximises
    the summed IoU (scipy's Hungarian solver on the ``(C, C)`` IoU matrix); each class's IoU is then
    ``TP / (TP + FP + FN)`` of the matched prediction, **0 for classes absent from both** ground truth
    and predictions, and the mean runs over all ``C`` classes.

    Returns:
        ``{"mIoU", "per_class_iou", "matching"}``; ``matching`` maps predicted class → ground-truth class.
    """
    m = torch.as_tensor(np.asarray(matrix), dtype=torch.float64)
    gt, pred = m.sum(1, keepdim=True), m.sum(0, keepdim=True)
    iou_matrix = m / (gt + pred - m).clamp_min(1e-8)  # (gt class, predicted class)
    gt_idx, pred_idx = linear_sum_assignment(iou_matrix.numpy(), maximize=True)
    matched = m[:, pred_idx[np.argsort(gt_idx)]]  # column j: the prediction matched to class j
    tp = matched.diag()
    iou = tp / (matched.sum(1) + matched.sum(0) - tp).clamp_min(1e-8)
    names = class_names or [f"class_{i}" for i in range(len(tp))]
    return {"mIoU": float(iou.mean()), "per_class_iou": {n: float(v) for n, v in zip(names, iou)},
            "matching": {int(p): int(g) for g, p in zip(gt_idx, pred_idx)}}


def _nanmean(values: torch.Tensor) -> float:
    finite = values[~torch.isnan(values)]
    return float(finite.mean()) if finite.numel() else float("nan")
