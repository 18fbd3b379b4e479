"""The source images behind a bank's rows, for neighbour pictures and the viewer: a dataset's files,
in-memory examples (or the files saved with their bank), or both for a dataset bank grown from Python."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from hummingbird.datasets.examples import MEMORY_DATASET, ExampleDataset, ExampleSources
from hummingbird.memory.bank import MemoryBank
from hummingbird.visual.neighbours import SourceImages


def bank_sources(bank: MemoryBank, bank_path, data_root):
    """Source images of a saved bank: its dataset, or (in-memory examples) the files saved with it."""
    meta = bank.metadata
    if meta.get("dataset") != MEMORY_DATASET:
        return _LazySources(bank, data_root)
    folder = data_root or meta.get("dataset_root")  # saved beside the bank: relative to its folder
    if folder is not None and bank_path is not None and not Path(folder).is_absolute():
        folder = Path(bank_path).parent / folder
    return ExampleSources(meta["image_ids"], files=meta.get("image_files"), folder=folder)


class _LazySources:
    """A dataset's source images, opened when first needed (a bank's data may have moved: a missing
    folder is an error only when a neighbour picture needs it)."""

    def __init__(self, bank: MemoryBank, data_root):
        self.bank, self.data_root, self._sources = bank, data_root, None

    def _open(self) -> SourceImages:
        if self._sources is None:
            self._sources = SourceImages(self.bank, self.data_root)
        return self._sources

    def path(self, image_index: int) -> Path:
        return self._open().path(image_index)

    def open(self, image_index: int) -> Image.Image:
        return self._open().open(image_index)


def grown_sources(sources, bank: MemoryBank, examples: ExampleDataset, first: int):
    """Sources of a grown bank: the old ones, then the new examples (in memory)."""
    added = ExampleSources([s.id for s in examples.samples], examples.images,
                           [str(f) if f else None for f in examples.files])
    if not isinstance(sources, ExampleSources):
        if bank.metadata.get("dataset") != MEMORY_DATASET:
            return _GrownSources(sources, first, added)  # a dataset bank grown from Python
        sources = ExampleSources(bank.metadata["image_ids"][:first])
    return ExampleSources(bank.metadata["image_ids"], sources.images + added.images, sources.files + added.files,
                          sources.folder)


class _GrownSources:
    """A dataset bank's sources followed by examples added from Python (held in memory, or their files)."""

    def __init__(self, dataset_sources, first: int, added: ExampleSources):
        self.dataset_sources, self.first, self.added = dataset_sources, first, added

    def path(self, image_index: int):
        if image_index < self.first:
            return self.dataset_sources.path(image_index)
        return self.added.path(image_index - self.first)

    def open(self, image_index: int) -> Image.Image:
        if image_index < self.first:
            return self.dataset_sources.open(image_index)
        return self.added.open(image_index - self.first)
