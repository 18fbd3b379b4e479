"""Why did a patch get its label: a query patch's nearest memory patches, traced back to source pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hummingbird.datasets.imageio import read_rgb
from hummingbird.datasets.registry import load_dataset
from hummingbird.errors import BankError, ConfigError, option
from hummingbird.memory.bank import MemoryBank
from hummingbird.memory.decoder import HummingbirdDecoder
from hummingbird.visual.geometry import patch_box_in_source


@dataclass
class Neighbour:
    """One memory patch: its row in the bank, similarity, label, and where it came from."""

    memory_row: int
    similarity: float
    label: int
    label_name: str
    image_index: int
    image_id: str
    box: tuple[float, float, float, float]  # (x0, y0, x1, y1) in source-image pixels

    def to_dict(self) -> dict:
        return {**self.__dict__, "box": [round(v, 2) for v in self.box]}


class SourceImages:
    """Opens the images a bank was built from (its dataset, or ``data_root`` if the data moved)."""

    def __init__(self, bank: MemoryBank, data_root: str | Path | None = None):
        meta = bank.metadata
        root = data_root or meta.get("dataset_root")
        if root is None or not Path(root).exists():
            raise BankError(f"the bank's source images are not at {root!r}; pass {option('data_root')}")
        extra = {"num_classes": bank.num_classes} if meta.get("dataset") in ("folder", "voc", "labelme") else {}
        dataset = load_dataset(meta["dataset"], root, meta["split"], **extra)
        by_id = {s.id: s.image for s in dataset.samples}
        self.paths = [by_id.get(i) for i in meta["image_ids"]]

    def path(self, image_index: int) -> Path:
        path = self.paths[image_index]
        if path is None or not path.is_file():
            raise BankError(f"source image {image_index} of the bank is missing ({path})")
        return path

    def open(self, image_index: int) -> Image.Image:
        return read_rgb(self.path(image_index), BankError)


def describe_row(bank: MemoryBank, row: int, similarity: float = float("nan")) -> Neighbour:
    """Memory row ``row`` → its :class:`Neighbour` record (label, source image, source box)."""
    view_index, r, c = bank.sources[row].tolist()
    view = bank.views[view_index]
    label = int(bank.labels[row].argmax())
    image_index = int(view[0])
    box = patch_box_in_source(view[1:], r, c, bank.metadata["patch_size"], bank.metadata["input_size"])
    return Neighbour(row, float(similarity), label, bank.class_names[label], image_index,
                     bank.metadata["image_ids"][image_index], box)


def describe_neighbours(bank: MemoryBank, rows: torch.Tensor, similarities: torch.Tensor) -> list[Neighbour]:
    """Memory ``rows (k,)`` with their ``similarities (k,)`` → :class:`Neighbour` records."""
    return [describe_row(bank, row, sim) for row, sim in zip(rows.tolist(), similarities.tolist())]


@dataclass
class QueryResult:
    """A query image's predicted labels (the decoder's, as ``segment`` gives them) and, per patch, the
    neighbours shown (``k`` of them)."""

    image: Image.Image
    labels: np.ndarray  # (H, W) predicted class per pixel at the image's own resolution
    similarities: torch.Tensor  # (h, w, k)
    rows: torch.Tensor  # (h, w, k) memory rows
    grid: tuple[int, int]
    input_shape: tuple[int, int] = (0, 0)  # (height, width) in pixels of the network input


def query_image(features, decoder: HummingbirdDecoder, image: Image.Image, input_size: int,
                mode: str = "square", shown: int | None = None, image_id: str | None = None) -> QueryResult:
    """Encode ``image`` (``mode`` ``square``: resized to ``input_size`` square; ``aspect``: short side
    ``input_size``, aspect ratio kept, see :mod:`hummingbird.memory.tiling`), label it with ``decoder`` (its
    own ``k``: the label map :func:`~hummingbird.memory.tiling.segment_image` gives) and keep every patch's
    ``shown`` nearest neighbours (default: the decoder's ``k``; more than that are searched again)."""
    from hummingbird.memory.tiling import input_shape, resize_image

    if min(image.size) < features.patch_size:
        raise ConfigError(f"image is {image.width}x{image.height}, smaller than one {features.patch_size}-px patch")
    if mode not in ("square", "aspect"):
        raise ConfigError(f"resize mode {mode!r}: neighbours are shown for one pass, square or aspect")
    shape = input_shape(image.height, image.width, input_size, features.patch_size, mode)
    tensor = resize_image(image, shape)
    device = next(features.encoder.parameters()).device
    feats = features(tensor[None].to(device), [image_id] if image_id else None).cpu()  # (1, h, w, D)
    sims, rows = decoder.neighbours(feats)
    labels = decoder.upsample(decoder.distributions_from(sims, rows), (image.height, image.width))[0].numpy()
    shown = shown or decoder.k
    if shown <= decoder.k:  # the decoder's neighbours, most similar first
        sims, rows = sims[..., :shown], rows[..., :shown]
    else:
        wider = HummingbirdDecoder(decoder.index, decoder.memory_labels, k=shown, temperature=decoder.temperature)
        sims, rows = wider.neighbours(feats)
    return QueryResult(image, labels, sims[0], rows[0], tuple(rows.shape[1:3]), shape)
