"""Protocol presets: every setting in which this toolkit's defaults and the field's reference evaluation
differ, under one name, so a user can ask for a protocol and get its numbers.

* ``default`` — this toolkit's own choices.
* ``open-hbird`` — open-hummingbird-eval 2.0.0 (Pariza et al., vpariza/open-hummingbird-eval @ 5e79da2),
  the evaluation behind most published Hummingbird tables, reproduced in every point that changes its
  numbers (README, "Fidelity"). Its input normalisation has blue std 0.255 — a typo of ImageNet's 0.225
  in the peer's code, reproduced here on purpose and only in this preset.

Settings shared by both (and so not here): the official DINO/DINOv2 position-embedding resampling
(:mod:`hummingbird.models.pos_embed`), Pillow's antialiased bilinear resize of evaluation images, nearest-neighbour
masks, evaluation at the input size, exact search by default, ``k = 30``, ``τ = 0.02``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from hummingbird.datasets.base import IGNORE_INDEX, PairedTransform
from hummingbird.datasets.transforms import MemoryAugment, OpenHbirdAugment
from hummingbird.errors import ConfigError, option
from hummingbird.memory.patch_labels import patch_label_distributions
from hummingbird.memory.sampling import class_balanced_selection, class_frequency_selection

SELECTIONS = {"rarest-class": class_balanced_selection, "class-frequency": class_frequency_selection}
AUGMENTATIONS = {"crop-flip-jitter": MemoryAugment, "open-hbird": OpenHbirdAugment}


@dataclass(frozen=True)
class Protocol:
    """One protocol preset.

    Attributes:
        name: the preset's name (``--protocol-preset``), recorded in every bank built with it.
        normalisation: ``(mean, std)`` of the input, or ``None`` for the backbone's own.
        void_label: memory labels: ``None`` leaves void (255) pixels out of each patch's class histogram
            (all-void patches are dropped); a class index counts them as that class.
        selection: bounded memory, which patches an image keeps (a key of :data:`SELECTIONS`).
        augmentation: memory augmentation (a key of :data:`AUGMENTATIONS`).
        headline_metric: the result key this protocol reports (``mIoU`` or ``open_hbird_hungarian_mIoU``).
        ade20k_other: ADE20K's "other" (raw 0): ``"ignore"`` (150 classes, labels shifted down as in
            mmsegmentation) or ``"class"`` (151 classes, raw labels: "other" is class 0 of the memory and
            ignored in the evaluation's ground truth, but still one of the classes the mean runs over).
        search: the neighbour search when ``--index`` is not given: ``auto`` (exact for small memories,
            clustered above :data:`hummingbird.memory.search.CPU_CLUSTERED_FROM` patches on the CPU) or ``Flat``
            (faiss exact search, the search behind the peer's numbers with faiss).
        precision: what ``--precision auto`` means under this preset: ``auto`` (the processor's native
            precision, :mod:`hummingbird.models.precision`) or ``fp32`` (a peer's precision, kept to reproduce it).
    """

    name: str
    normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None
    void_label: int | None
    selection: str
    augmentation: str
    headline_metric: str
    ade20k_other: str
    search: str = "auto"
    precision: str = "auto"

    def memory_transform(self, size: int) -> PairedTransform:
        """The paired augmentation of memory images at ``size × size``."""
        return AUGMENTATIONS[self.augmentation](size)

    def patch_labels(self, masks: torch.Tensor, patch_size: int, num_classes: int) -> torch.Tensor:
        """Masks ``(B, H, W)`` → per-patch class distributions ``(B, H/p, W/p, C)`` of the memory."""
        if self.void_label is not None:
            masks = masks.masked_fill(masks == IGNORE_INDEX, self.void_label)
        return patch_label_distributions(masks, patch_size, num_classes, IGNORE_INDEX)

    def select(self, label_dists: torch.Tensor, per_image: int, seeds) -> torch.Tensor:
        """Bounded memory: ``(B, P, C)`` distributions → ``(B, per_image)`` kept patch indices (``-1``: none)."""
        return SELECTIONS[self.selection](label_dists, per_image, seeds)

    def dataset_options(self, kind: str, role: str) -> dict:
        """Keyword arguments of :func:`hummingbird.datasets.base.load_dataset` for a dataset ``kind`` used as
        ``role`` (``"memory"`` or ``"evaluation"``)."""
        if kind != "ade20k":
            return {}
        if self.ade20k_other == "ignore":
            return {"other": "ignore"}
        return {"other": "class" if role == "memory" else "ignore-unshifted"}

    def to_dict(self) -> dict:
        return asdict(self)


PROTOCOLS = {
    "default": Protocol(name="default", normalisation=None, void_label=None, selection="rarest-class",
                        augmentation="crop-flip-jitter", headline_metric="mIoU", ade20k_other="ignore"),
    "open-hbird": Protocol(name="open-hbird", normalisation=((0.485, 0.456, 0.406), (0.229, 0.224, 0.255)),
                           void_label=0, selection="class-frequency", augmentation="open-hbird",
                           headline_metric="open_hbird_hungarian_mIoU", ade20k_other="class",
                           search="Flat", precision="fp32"),
}


def get_protocol(name: str) -> Protocol:
    """The preset called ``name``; :class:`ConfigError` listing the presets otherwise."""
    if name not in PROTOCOLS:
        raise ConfigError(f"{option('protocol_preset', name)}: choose from {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
