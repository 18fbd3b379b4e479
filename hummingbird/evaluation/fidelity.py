"""Fidelity to the field's reference evaluation: run the ``open-hbird`` preset on the images of a peer's
shipped answers, with the peer's settings, and compare pixel by pixel and metric by metric.

A peer folder (e.g. ``../shared/peers/open-hbird``) holds ``noaug_224_settings.json`` (every setting the
peer used: input size, k, τ, memory size, augmentation, its reported mIoU), the id lists
``train200.txt`` / ``val100.txt``, and ``noaug_224_predictions.npz`` with ``ids (N,)``, ``pred (N, S, S)``
and ``gt (N, S, S)`` uint8 (255: void) and ``confusion (C, C)`` (rows: ground truth).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hummingbird.datasets.base import IGNORE_INDEX, read_id_list
from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.registry import load_dataset
from hummingbird.datasets.transforms import EvalResize
from hummingbird.errors import DatasetError
from hummingbird.evaluation.metrics import ConfusionMatrix
from hummingbird.evaluation.protocols import PROTOCOLS, Protocol
from hummingbird.pipeline import build_memory_bank, make_decoder, predictions, summarise

SETTINGS_FILE, PREDICTIONS_FILE = "noaug_224_settings.json", "noaug_224_predictions.npz"


@dataclass
class PeerAnswers:
    """A peer's settings, training ids, and its per-pixel answers on the evaluation ids."""

    folder: Path
    settings: dict
    train_ids: list[str]
    ids: list[str]
    pred: np.ndarray  # (N, S, S) uint8
    gt: np.ndarray  # (N, S, S) uint8, 255 = void
    confusion: np.ndarray  # (C, C) int64

    @classmethod
    def load(cls, folder: str | Path) -> "PeerAnswers":
        folder = Path(folder)
        for name in (SETTINGS_FILE, PREDICTIONS_FILE, "train200.txt"):
            if not (folder / name).is_file():
                raise DatasetError(f"{folder / name}: peer answers file not found")
        settings = json.loads((folder / SETTINGS_FILE).read_text())
        with np.load(folder / PREDICTIONS_FILE) as arrays:
            missing = {"ids", "pred", "gt", "confusion"} - set(arrays.files)
            if missing:
                raise DatasetError(f"{folder / PREDICTIONS_FILE}: arrays {sorted(missing)} missing")
            ids, pred, gt, confusion = (arrays[k] for k in ("ids", "pred", "gt", "confusion"))
        return cls(folder, settings, read_id_list(folder / "train200.txt"), [str(i) for i in ids], pred, gt, confusion)


def reproduce_peer(peer: PeerAnswers, voc_root: str | Path, features, opts: LoaderOptions | None = None,
                   protocol: Protocol = PROTOCOLS["open-hbird"], resize=EvalResize) -> tuple[np.ndarray, np.ndarray]:
    """A protocol (the ``open-hbird`` preset) on the peer's VOC images with its settings (input size, k, τ,
    unbounded memory without augmentation, exact search).

    Args:
        features: a feature source whose encoder uses the protocol's normalisation (and DINOv2's official
            position-embedding resampling, the default).
        resize: the evaluation transform class (given the input size); other values measure what a change
            of resampling does.

    Returns:
        Our predictions and ground truth, ``(N, S, S)`` uint8 each, in the peer's order.
    """
    settings = peer.settings
    if settings.get("memory_size") is not None or not str(settings.get("augmentation", "none")).startswith("none"):
        raise DatasetError(f"{peer.folder / SETTINGS_FILE}: only unbounded memories without augmentation can be "
                           f"reproduced pixel for pixel (got memory_size={settings.get('memory_size')})")
    size = int(settings["input_size"])
    train = load_dataset("voc", voc_root, "trainaug", resize(size)).subset(peer.train_ids, "peer training ids")
    val = load_dataset("voc", voc_root, "val", resize(size)).subset(peer.ids, "peer evaluation ids")
    bank = build_memory_bank(features, train, size, protocol=protocol, opts=opts)
    decoder = make_decoder(bank, k=int(settings["k"]), temperature=float(settings["temperature"]),
                           index_spec=protocol.search)
    preds, gts = [], []
    for predicted in predictions(features, decoder, val, opts):
        preds.append(predicted.labels.cpu().to(torch.uint8))
        gts.append(predicted.masks.to(torch.uint8))
    return torch.cat(preds).numpy(), torch.cat(gts).numpy()


def compare_with_peer(pred: np.ndarray, gt: np.ndarray, peer: PeerAnswers, class_names: list[str]) -> dict:
    """Pixel agreement on non-void pixels, both mIoUs of both runs, and per-class IoU differences."""
    valid = peer.gt != IGNORE_INDEX
    ours = summarise(_confusion(pred, gt, len(class_names)), class_names, headline="open_hbird_hungarian_mIoU")
    theirs = summarise(torch.as_tensor(peer.confusion), class_names, headline="open_hbird_hungarian_mIoU")
    per_class = {}
    for name in class_names:
        a, b = ours["open_hbird_hungarian"]["per_class_iou"][name], theirs["open_hbird_hungarian"]["per_class_iou"][name]
        per_class[name] = {"ours": round(a, 6), "peer": round(b, 6), "difference": round(a - b, 6)}
    return {
        "images": int(len(pred)), "pixels_compared": int(valid.sum()),
        "pixel_agreement": float((pred == peer.pred)[valid].mean()),
        "ground_truth_identical": bool(np.array_equal(gt, peer.gt)),
        "peer_confusion_matches_its_pixels": bool(np.array_equal(
            _confusion(peer.pred, peer.gt, len(class_names)).numpy(), peer.confusion)),
        "ours": {k: ours[k] for k in ("mIoU", "open_hbird_hungarian_mIoU", "pixel_accuracy")},
        "peer": {**{k: theirs[k] for k in ("mIoU", "open_hbird_hungarian_mIoU", "pixel_accuracy")},
                 "reported_mIoU": peer.settings.get("peer_reported_mIoU")},
        "per_class_open_hbird_hungarian_iou": per_class,
    }


def _confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> torch.Tensor:
    matrix = ConfusionMatrix(num_classes, IGNORE_INDEX)
    matrix.update(torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(gt.astype(np.int64)))
    return matrix.matrix
