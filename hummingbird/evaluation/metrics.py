"""Segmentation metrics from a confusion matrix accumulated image by image."""

from __future__ import annotations

import numpy as np
import torch


class ConfusionMatrix:
    """Accumulates a ``(C, C)`` int64 confusion matrix (rows: ground truth, columns: prediction).

    Pixels whose ground truth is ``ignore_index`` are skipped; only the matrix is kept, never masks.
    Counts accumulate on the device of the predictions (one ``bincount`` per update, no copy to the
    host); :attr:`matrix` brings them to the CPU. Target values outside ``[0, C)`` raise ``ValueError``
    at the update on the CPU, and when the matrix is read on other devices (checking there would wait
    for the device at every update).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        # C·C cells, then one bin counting target values out of range
        self._counts = torch.zeros(num_classes * num_classes + 1, dtype=torch.int64)

    @property
    def matrix(self) -> torch.Tensor:
        """The ``(C, C)`` counts, on the CPU (in-place changes, e.g. an all-reduce, are kept)."""
        if self._counts.device.type != "cpu":
            self._counts = self._counts.cpu()
        self._check(self._counts)
        c = self.num_classes
        return self._counts[: c * c].view(c, c)

    @matrix.setter
    def matrix(self, value: torch.Tensor) -> None:
        flat = torch.as_tensor(value, dtype=torch.int64).reshape(-1).cpu()
        self._counts = torch.cat([flat, self._counts[-1:].cpu()])

    def update(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        """Add ``predictions`` and ``targets`` of equal shape ``(B, H, W)`` (targets are moved to the
        predictions' device)."""
        if predictions.shape != targets.shape:
            raise ValueError(f"prediction shape {tuple(predictions.shape)} != target shape {tuple(targets.shape)}")
        c = self.num_classes
        device = predictions.device
        targets = targets.reshape(-1).to(device, torch.int64, non_blocking=True)
        cells = targets * c + predictions.reshape(-1).long().clamp(0, c - 1)
        # ignored pixels → bin C·C+1 (dropped), out-of-range targets → bin C·C (checked)
        bins = torch.where(targets == self.ignore_index, c * c + 1,
                           torch.where((targets < 0) | (targets >= c), c * c, cells))
        counts = torch.bincount(bins, minlength=c * c + 2)[: c * c + 1]
        if device.type == "cpu":
            self._check(counts)
        if self._counts.device != device:
            self._counts = self._counts.to(device)
        self._counts += counts

    def _check(self, counts: torch.Tensor) -> None:
        if counts[-1] > 0:
            raise ValueError(f"target values outside [0, {self.num_classes}) and not {self.ignore_index}")


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
    from scipy.optimize import linear_sum_assignment  # scipy: only for the matched scores

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
