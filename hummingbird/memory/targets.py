"""What a memory row holds besides its feature: the **target kind**, declared once.

Every memory row is a feature ``(D,)`` and a target vector ``(T,)``; the decoder's attention over the k
nearest rows is the same for every kind (:func:`hummingbird.memory.decoder.soft_labels`: ``Σ_j softmax(s/τ)_j
· target_j``). What a target vector means, and how the aggregated patch-grid targets become a per-pixel
answer, depends on the kind:

* ``classes`` — a class distribution ``(C,)`` per patch (the class histogram of its labelled pixels);
  per pixel: bilinear upsampling of the class channels, then the argmax (semantic segmentation);
* ``depth`` — a depth target per patch from its *valid* pixels only (patches without one are not stored;
  encodings ``mean``, ``log-mean``, ``bins``: :mod:`hummingbird.memory.depth_targets`); per pixel: the
  aggregated target decoded to metres and upsampled bilinearly, no argmax (monocular depth);
* ``objects`` — a distribution over one video's object ids ``(O,)`` (0 = background) per patch of a
  frame; per pixel: the video protocol's upsampling, then the argmax (label propagation).

A bank records its kind (``metadata["target_kind"]``; banks written before kinds existed are ``classes``)
and a bank of one kind refuses to be used as another (:func:`check_target_kind`).
"""

from __future__ import annotations

from dataclasses import dataclass

from hummingbird.errors import BankError


@dataclass(frozen=True)
class TargetKind:
    """A declared target kind: its name, what one target vector holds, and what the decoder answers."""

    name: str
    holds: str
    answers: str


TARGET_KINDS = {
    "classes": TargetKind("classes", "a class distribution (C,)", "a label map (H, W) of class indices"),
    "depth": TargetKind("depth", "a depth target from the patch's valid pixels", "a depth map (H, W) in metres"),
    "objects": TargetKind("objects", "a distribution over a video's object ids (O,)",
                          "a label map (H, W) of object ids"),
}
DEFAULT_TARGET_KIND = "classes"


def target_kind_of(metadata: dict) -> str:
    """The target kind a bank's ``metadata`` records (``classes`` for banks that predate kinds)."""
    return metadata.get("target_kind") or DEFAULT_TARGET_KIND


def check_target_kind(metadata: dict, expected: str, source: str) -> None:
    """Raise :class:`BankError` naming ``source`` when the bank holds another target kind than ``expected``."""
    if expected not in TARGET_KINDS:
        raise BankError(f"unknown target kind {expected!r}; use one of {', '.join(TARGET_KINDS)}")
    kind = target_kind_of(metadata)
    if kind != expected:
        held, wanted = TARGET_KINDS.get(kind), TARGET_KINDS[expected]
        raise BankError(f"{source}: a {kind} memory ({held.holds if held else 'unknown kind'} per row) cannot "
                        f"answer a {expected} query, which needs {wanted.holds} per row; build a {expected} "
                        f"memory for it")
