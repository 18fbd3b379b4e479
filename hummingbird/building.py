"""Building memory banks for the API and the command line: from a dataset folder or in-memory examples,
in one file or as a sharded folder."""

from __future__ import annotations

from pathlib import Path

from hummingbird.datasets.base import SegmentationDataset
from hummingbird.datasets.examples import ExampleDataset
from hummingbird.errors import note
from hummingbird.memory.bank import MemoryBank
from hummingbird.pipeline import build_memory_bank
from hummingbird.settings import (
    Pipeline,
    Settings,
    memory_transform,
    open_dataset,
    protocol_for,
    resolve_pipeline,
    split_keywords,
)


def build_sharded(kind: str, root: str | Path, split: str, out_dir: str | Path, *, fileset: str | None = None,
                  num_classes: int | None = None, memory_size: int | None = None, augmentation_epochs: int = 1,
                  augment: bool = True, fp16: bool = False, shard_images: int = 256, rank: int = 0, world: int = 1,
                  max_images: int | None = None, **keywords):
    """Build a sharded bank folder (one shard per ``shard_images`` images, resumable; this process builds
    every ``world``-th shard, see :mod:`hummingbird.memory.shards`). Returns this rank's shard names and, on
    rank 0, the finished :class:`~hummingbird.memory.shards.ShardedBank`."""
    from hummingbird.memory.shards import ShardedBank, write_manifest
    from hummingbird.runtime.distributed import barrier

    settings, _ = split_keywords(keywords, "build_sharded")
    split_at = split_opener(kind, root, split, fileset, num_classes, settings, max_images)
    pipeline = resolve_pipeline(settings, training_split=split_at) if rank == 0 else None
    barrier(world)  # a FUNGI support memory is built once, by rank 0, before the others read it
    pipeline = pipeline or resolve_pipeline(settings, training_split=split_at)
    dataset = split_at(pipeline.size, pipeline.patch_size, memory_transform(pipeline.protocol, pipeline.size, augment))
    names = build_sharded_bank(pipeline.features, dataset, out_dir, pipeline.size, memory_size=memory_size,
                               augmentation_epochs=augmentation_epochs, seed=settings.seed, fp16=fp16,
                               shard_images=shard_images, rank=rank, world=world, opts=pipeline.loader,
                               protocol=pipeline.protocol)
    note(f"rank {rank}/{world}: {len(names)} shards in {out_dir}", settings.notes)
    barrier(world)
    if rank > 0:
        return names, None
    write_manifest(out_dir, len(dataset), augmentation_epochs, shard_images)
    return names, ShardedBank(out_dir)


def split_opener(kind: str, root, split: str, fileset: str | None, num_classes: int | None, settings: Settings,
                 max_images: int | None = None):
    """``(size, patch_size, transform=None) → dataset``: the training split (default: resized to size; its
    first ``max_images`` images when given)."""
    def split_at(size: int, patch_size: int, transform=None) -> SegmentationDataset:
        from hummingbird.datasets.transforms import EvalResize

        return open_dataset(kind, root, split, transform or EvalResize(size), protocol_for(settings.protocol_preset),
                            fileset=fileset, num_classes=num_classes, min_side=patch_size, role="memory",
                            seed=settings.seed, max_images=max_images)

    return split_at


def build_bank(pipeline: Pipeline, dataset: SegmentationDataset, memory_size, augmentation_epochs: int,
               augment: bool, fp16: bool) -> MemoryBank:
    """A bank of ``dataset`` (its transform: the protocol's augmentation or a plain resize)."""
    if isinstance(dataset, ExampleDataset):
        dataset = dataset.with_transform(memory_transform(pipeline.protocol, pipeline.size, augment))
    dataset.min_side = pipeline.patch_size
    where = "in-memory examples" if isinstance(dataset, ExampleDataset) else f"{dataset.root} [{dataset.split}]"
    note(f"memory: {len(dataset)} images of {where}, {dataset.num_classes} classes, {pipeline.features.kind} "
         f"features ({pipeline.features.dim} dims), protocol preset {pipeline.protocol.name}", pipeline.settings.notes)
    return build_memory_bank(pipeline.features, dataset, pipeline.size, memory_size=memory_size,
                             augmentation_epochs=augmentation_epochs, seed=pipeline.settings.seed, fp16=fp16,
                             opts=pipeline.loader, protocol=pipeline.protocol)


def build_sharded_bank(features, dataset: SegmentationDataset, out_dir: str | Path, input_size: int,
                       memory_size: int | None = None, augmentation_epochs: int = 1, seed: int = 0,
                       fp16: bool = False, shard_images: int = 256, rank: int = 0, world: int = 1,
                       opts=None, protocol=None) -> list[str]:
    """Encode this rank's shards into ``out_dir`` (skipping shards already there); returns their names.

    Shard ``i`` of the plan belongs to rank ``i % world``. Call :func:`write_manifest` once every rank
    has finished. ``protocol``: see :func:`hummingbird.pipeline.build_memory_bank` (default: ``default``).
    """
    from hummingbird.evaluation.protocols import PROTOCOLS
    from hummingbird.files.atomic import make_folder
    from hummingbird.memory.shards import shard_name, shard_plan

    protocol = protocol or PROTOCOLS["default"]
    out_dir = Path(out_dir)
    make_folder(out_dir)
    written = []
    for i, (epoch, start, end) in enumerate(shard_plan(len(dataset), augmentation_epochs, shard_images)):
        if i % world != rank:
            continue
        path = out_dir / shard_name(epoch, start)
        if not path.is_file():  # shards on disk are complete (atomic writes): resume after them
            part = build_memory_bank(features, dataset, input_size, memory_size=memory_size,
                                     augmentation_epochs=augmentation_epochs, seed=seed, fp16=fp16, opts=opts,
                                     indices=range(start, end), epochs=[epoch], protocol=protocol)
            part.metadata.update(shard={"epoch": epoch, "start": start, "end": end})
            part.save(path)
        written.append(path.name)
    return written
