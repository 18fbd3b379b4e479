"""Named forms of the dense FUNGI InfoNCE objective (``--fungi-objective-variant``).

The FUNGI authors' two codes disagree, and their dense code has a bug, so the objective is a named
choice recorded in every bank:

* ``dense-reference`` — the authors' dense Hummingbird code (``fungi-hummingbird``) exactly, **bug
  included**, for reproducing the paper's dense tables: the class token is an anchor and a positive, a
  biased linear head, only the positive term divided by τ (the log-sum-exp takes raw cosines), loss
  features rounded to float16, and each image's negatives pooled over all its tokens with each row kept
  with p = 0.5. The bug: the 5 neighbours fetched per token are reshaped ``(5, D) → (D, 5)`` and
  transposed, so the "neighbours" are interleaved pieces of all five (cosine ≈ 0.04 to the true ones),
  i.e. noise; the first 2 of those rows are used.
* ``dense-reference-fixed`` — the same form with the true 2 nearest neighbours (from other images).
* ``patchwise`` — this toolkit's first form, as in the authors' main FUNGI code: every logit divided by
  τ, each patch its own 2 negatives, patches only, a bias-free Gaussian head, float32. Banks written
  before variants existed used it.
* ``pooled`` — ``patchwise`` with the negatives of all patches of an image pooled and shared by every
  anchor (2 per patch, no subsampling), so that they hold a real share of the softmax mass.

The default is ``dense-reference-fixed``: measured on real VOC images (``eval/fungi_variants.py``, the
README's FUNGI section) no variant retrieves measurably better than another, and this one is the
authors' dense objective (its predictions equal the bug-for-bug reference on 99.8 % of pixels) without
the bug.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hummingbird.errors import ConfigError, option

HEADS = ("gaussian", "linear")
TEMPERATURE_ON = ("all", "positives")


@dataclass(frozen=True)
class ObjectiveVariant:
    """How the InfoNCE objective is formed.

    Attributes:
        name: registry key.
        summary: one line for ``--help`` and tables.
        class_token: the class token is an anchor and a positive like every patch (its own gradient
            row is dropped afterwards).
        head: ``"gaussian"`` — ``N(0, 1/D)`` weights, no bias; ``"linear"`` — ``torch.nn.Linear``'s
            default init, ``U(±1/√D)`` weights and bias.
        temperature_on: ``"all"`` — every logit is ``cos/τ``; ``"positives"`` — only the mean-positive
            term is divided by τ, the log-sum-exp runs over raw cosines.
        loss_fp16: latents are rounded to float16 before the loss (forward and backward), as the
            reference does.
        pooled: the negatives of all tokens of an image form one set shared by every anchor.
        keep_fraction: pooled negatives: each row is kept with this probability (one seeded mask per
            image, shared by every anchor).
        fetched: neighbours fetched per token before the first ``negatives`` are taken (matters only
            with ``scrambled``).
        scrambled: the reference's reshape bug (see the module docstring).
        skip_own_image: neighbours from the query's own image (when its id is in the support) are
            skipped; the reference does not know image ids and skips nothing.
    """

    name: str
    summary: str
    class_token: bool = False
    head: str = "gaussian"
    temperature_on: str = "all"
    loss_fp16: bool = False
    pooled: bool = False
    keep_fraction: float = 1.0
    fetched: int | None = None
    scrambled: bool = False
    skip_own_image: bool = True

    def __post_init__(self):
        if self.head not in HEADS or self.temperature_on not in TEMPERATURE_ON:
            raise ConfigError(f"objective variant {self.name!r}: bad head {self.head!r} or temperature_on "
                              f"{self.temperature_on!r}")
        if not 0 < self.keep_fraction <= 1:
            raise ConfigError(f"objective variant {self.name!r}: keep_fraction must be in (0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)


_REFERENCE = dict(class_token=True, head="linear", temperature_on="positives", loss_fp16=True, pooled=True,
                  keep_fraction=0.5, fetched=5)

VARIANTS: dict[str, ObjectiveVariant] = {v.name: v for v in (
    ObjectiveVariant("dense-reference", "the authors' dense code exactly, incl. its scrambled-neighbour bug "
                     "(reproduces the paper's dense tables)", scrambled=True, skip_own_image=False, **_REFERENCE),
    ObjectiveVariant("dense-reference-fixed", "the authors' dense form with the true nearest neighbours",
                     **_REFERENCE),
    ObjectiveVariant("patchwise", "every logit / τ, each patch its own negatives (the authors' main code; "
                     "banks without a variant)"),
    ObjectiveVariant("pooled", "every logit / τ, all patches' negatives pooled per image and shared",
                     pooled=True),
)}

# Banks and configs written before variants existed were built with this one.
LEGACY_VARIANT = "patchwise"
DEFAULT_VARIANT = "dense-reference-fixed"  # why: README, "Dense FUNGI features"


def get_variant(name: str) -> ObjectiveVariant:
    """The registered variant ``name``; :class:`ConfigError` naming the choices otherwise."""
    if name not in VARIANTS:
        raise ConfigError(f"{option('fungi_objective_variant', name)}: choose from {', '.join(VARIANTS)}")
    return VARIANTS[name]
