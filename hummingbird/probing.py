"""The two other dense evaluations reported beside Hummingbird, from a user's settings to the results
record: ``evaluate --protocol linear`` and ``--protocol overcluster`` (the algorithms are in
:mod:`hummingbird.evaluation.probes`)."""

from __future__ import annotations

from hummingbird.datasets.base import SegmentationDataset
from hummingbird.evaluation.probes import (
    cluster_patches,
    encode_split,
    linear_probe_scores,
    overcluster_scores,
    train_linear_probe,
)
from hummingbird.evaluation.results import UNITS, UNITS_KEY


def probe_evaluation(protocol: str, settings, kind: str, root, train_split: str, split: str, *,
                     train_fileset: str | None = None, fileset: str | None = None, num_classes: int | None = None,
                     clusters: list[int] | None = None, epochs: int = 20, lr: float = 1e-3,
                     max_images: int | None = None) -> dict:
    """``evaluate --protocol linear`` (a probe trained on ``train_split``) or ``overcluster`` (k-means on
    ``split``'s patches) with the pipeline of ``settings`` (a :class:`hummingbird.settings.Settings`):
    the results record, with its configuration (:func:`format_probe` turns it into text)."""
    from hummingbird.datasets.transforms import EvalResize
    from hummingbird.settings import open_dataset, protocol_for, resolve_pipeline

    pipeline_protocol = protocol_for(settings.protocol_preset)

    def at(split_name: str, split_fileset: str | None, size: int, patch: int) -> SegmentationDataset:
        return open_dataset(kind, root, split_name, EvalResize(size), pipeline_protocol, fileset=split_fileset,
                            num_classes=num_classes, min_side=patch, seed=settings.seed, max_images=max_images)

    pipeline = resolve_pipeline(settings, training_split=lambda size, p: at(train_split, train_fileset, size, p))
    size, patch, opts = pipeline.size, pipeline.patch_size, pipeline.loader
    dataset = at(split, fileset, size, patch)
    val_feats, val_masks = encode_split(pipeline.features, dataset, opts, f"encode {split}")
    names = list(dataset.class_names)
    config = {"protocol": protocol, "dataset": kind, "data_root": str(dataset.root), "split": dataset.split,
              "input_size": size, "seed": settings.seed, **pipeline.features.metadata()}
    if protocol == "linear":
        train = at(train_split, train_fileset, size, patch)
        train_feats, train_masks = encode_split(pipeline.features, train, opts, f"encode {train_split}")
        probe = train_linear_probe(train_feats, train_masks, len(names), epochs=epochs, lr=lr, seed=settings.seed,
                                   progress=opts.progress)
        result = linear_probe_scores(probe, val_feats, val_masks, names)
        config.update(train_split=train_split, train_images=len(train), epochs=epochs, lr=lr)
        return {"config": config, **result, UNITS_KEY: UNITS}
    per_k = {}
    for k in clusters or [len(names)]:
        found = cluster_patches(val_feats, k, seed=settings.seed)
        per_k[str(k)] = overcluster_scores(found, val_masks, k, names)
    return {"config": config, "mIoU": per_k[str((clusters or [len(names)])[0])]["mIoU"], "per_k": per_k,
            UNITS_KEY: UNITS}


def format_probe(result: dict) -> str:
    """The per-class table of a linear probe, or one line per K of overclustering (mIoU in percent)."""
    from hummingbird.evaluation.results import format_scores

    if "per_k" not in result:
        return format_scores(result)
    return "\n".join(f"K={k} ({r['matching']} matching): mIoU {100 * r['mIoU']:.2f} %" for k, r in result["per_k"].items())
