"""Editing a memory bank image by image: replace or remove the rows of one annotated image, grow the class list.

A bank's rows belong to views, and views to images (``views[:, 0]``, an index into ``metadata["image_ids"]``).
Re-annotating an image must *replace* its rows, never add a second copy of them: :func:`replace_image_rows`
drops every row (and view) of that image and appends the new ones; :func:`remove_image_rows` drops them and
renumbers the images after it. Both return a new :class:`~hummingbird.memory.bank.MemoryBank` (the input is
left as it was) whose ``checksum`` is cleared: the edited bank is saved, and checksummed, anew.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hummingbird.errors import BankError
from hummingbird.memory.bank import MemoryBank


def empty_bank(dim: int, class_names: Sequence[str], metadata: dict) -> MemoryBank:
    """A bank of no rows with ``dim``-wide features over ``class_names`` (``metadata``: the pipeline's record)."""
    meta = dict(metadata, class_names=list(class_names), image_ids=[], num_images=0, num_patches=0, checksum=None)
    return MemoryBank(torch.zeros(0, dim), torch.zeros(0, len(class_names)), torch.zeros(0, 3, dtype=torch.int32),
                      torch.zeros(0, 6, dtype=torch.int32), meta)


def _without_image(bank: MemoryBank, index: int, renumber: bool) -> MemoryBank:
    """``bank`` less the rows and views of image ``index`` (``renumber``: later images move down by one)."""
    views = bank.views
    keep_view = views[:, 0] != index
    new_number = torch.cumsum(keep_view.long(), 0) - 1  # old view → new view index
    keep_row = keep_view[bank.sources[:, 0].long()]
    sources = bank.sources[keep_row].clone()
    sources[:, 0] = new_number[sources[:, 0].long()].to(sources.dtype)
    views = views[keep_view].clone()
    meta = dict(bank.metadata)
    if renumber:
        views[:, 0] -= (views[:, 0] > index).to(views.dtype)
        ids = list(meta.get("image_ids", []))
        del ids[index]
        meta.update(image_ids=ids, num_images=len(ids))
        if meta.get("image_files"):
            files = list(meta["image_files"])
            del files[index]
            meta["image_files"] = files
    meta.update(checksum=None, num_patches=int(keep_row.sum()))
    return MemoryBank(bank.features[keep_row], bank.labels[keep_row], sources, views, meta)


def replace_image_rows(bank: MemoryBank, image_id: str, features: torch.Tensor, labels: torch.Tensor,
                       cells: torch.Tensor, view: Sequence[int]) -> MemoryBank:
    """``bank`` with the rows of ``image_id`` replaced by ``features (n, D)``, ``labels (n, C)`` taken from
    patches ``cells (n, 2)`` (row, column on the patch grid) of one view ``(top, left, height, width, flipped)``
    of the image; an image not in the bank is appended. ``n`` may be 0 (the image keeps no rows)."""
    if features.shape[0] != labels.shape[0] or features.shape[0] != cells.shape[0]:
        raise BankError(f"{image_id}: {features.shape[0]} feature rows, {labels.shape[0]} labels, "
                        f"{cells.shape[0]} cells")
    if len(bank) and features.shape[1] != bank.dim:
        raise BankError(f"{image_id}: features are {features.shape[1]}-wide, the bank's {bank.dim}")
    if labels.shape[1] != bank.num_classes:
        raise BankError(f"{image_id}: labels over {labels.shape[1]} classes, the bank has {bank.num_classes}")
    ids = list(bank.metadata.get("image_ids", []))
    if image_id in ids:
        index = ids.index(image_id)
        bank = _without_image(bank, index, renumber=False)
    else:
        index = len(ids)
        ids.append(image_id)
    view_number = len(bank.views)
    sources = torch.cat([torch.full((len(cells), 1), view_number, dtype=torch.int32), cells.to(torch.int32)], 1)
    views = torch.cat([bank.views, torch.tensor([[index, *[int(v) for v in view]]], dtype=torch.int32)])
    meta = dict(bank.metadata, image_ids=ids, num_images=len(ids), checksum=None)
    meta["num_patches"] = len(bank) + len(features)
    return MemoryBank(torch.cat([bank.features, features.to(bank.features.dtype)]),
                      torch.cat([bank.labels, labels.to(bank.labels.dtype)]),
                      torch.cat([bank.sources, sources]), views, meta)


def remove_image_rows(bank: MemoryBank, image_id: str) -> MemoryBank:
    """``bank`` without ``image_id`` (its rows, views and id); unchanged when the image is not in it."""
    ids = list(bank.metadata.get("image_ids", []))
    if image_id not in ids:
        return bank
    return _without_image(bank, ids.index(image_id), renumber=True)


def with_class_names(bank: MemoryBank, class_names: Sequence[str]) -> MemoryBank:
    """``bank`` over ``class_names``: the same classes renamed, and new classes appended (their label column
    zero); classes are never removed (rows would lose their labels)."""
    names = list(class_names)
    if len(names) < bank.num_classes:
        raise BankError(f"{len(names)} class names for a bank of {bank.num_classes} classes; classes can be "
                        f"renamed or added, not removed")
    labels = bank.labels
    if len(names) > bank.num_classes:
        labels = torch.cat([labels, labels.new_zeros(len(labels), len(names) - bank.num_classes)], 1)
    return MemoryBank(bank.features, labels, bank.sources, bank.views,
                      dict(bank.metadata, class_names=names, checksum=None))
