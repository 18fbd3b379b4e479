"""``evaluate --save-predictions DIR``: every prediction as a palette PNG (and optionally a colour
overlay with legend), written while the confusion matrix is accumulated from the same predictions.

Metrics follow the evaluation protocol (predictions and masks at the evaluation input size); the saved
PNGs are at each image's own resolution (the patch-grid distributions upsampled to it), named
``<id>.png`` / ``<id>_overlay.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from hummingbird.datasets.base import IGNORE_INDEX, SegmentationDataset
from hummingbird.errors import ConfigError, option
from hummingbird.evaluation.metrics import ConfusionMatrix
from hummingbird.files.atomic import make_folder, save_image
from hummingbird.pipeline import predictions
from hummingbird.visual import render
from hummingbird.visual.render import save_label_png


def check_prediction_dir(dataset: SegmentationDataset, out_dir: str | Path) -> None:
    """Refuse an ``out_dir`` where a prediction would replace one of the dataset's images or masks."""
    out_dir = Path(out_dir)
    inputs = {p.resolve(): p for s in dataset.samples for p in (s.image, s.mask) if p is not None}
    for sample in dataset.samples:
        for target in (out_dir / f"{sample.id}.png", out_dir / f"{sample.id}_overlay.png"):
            if target.resolve() in inputs:
                raise ConfigError(f"{target}: {option('save_predictions')} would write over the dataset file "
                                  f"{inputs[target.resolve()]}; choose another folder")


def evaluate_and_save(features, decoder, dataset: SegmentationDataset, out_dir: str | Path, palette: np.ndarray,
                      opts, indices: Sequence[int] | None = None, overlay: bool = False,
                      alpha: float = 0.5) -> ConfusionMatrix:
    """Confusion matrix of ``decoder`` on ``dataset`` (or its ``indices``), writing each prediction to
    ``out_dir/<id>.png`` (``overlay``: also ``<id>_overlay.png``, the image blended at ``alpha`` with a
    legend), from the batches of :func:`hummingbird.pipeline.predictions`."""
    check_prediction_dir(dataset, out_dir)
    out_dir = make_folder(out_dir)
    confusion = ConfusionMatrix(dataset.num_classes, IGNORE_INDEX)
    names = list(dataset.class_names)
    for predicted in predictions(features, decoder, dataset, opts, indices, desc="evaluate"):
        confusion.update(predicted.labels, predicted.masks)
        batch = predicted.batch
        for dist, index, view, image_id in zip(predicted.distributions, batch["index"], batch["view"], predicted.ids):
            height, width = int(view[2]), int(view[3])  # the source image's own size
            labels = decoder.upsample(dist[None], (height, width))[0].cpu().numpy()
            save_label_png(labels, palette, out_dir / f"{image_id}.png")
            if overlay:
                image = dataset.read_image(int(index))
                picture = render.with_legend(render.overlay(image, labels, palette, alpha), labels, names, palette)
                save_image(picture, out_dir / f"{image_id}_overlay.png", format="PNG")
    return confusion
