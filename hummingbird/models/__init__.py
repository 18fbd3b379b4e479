"""Frozen backbones: the preset registry (:mod:`~hummingbird.models.presets`), ``PatchEncoder`` over timm
ViTs (:mod:`~hummingbird.models.backbones`), checkpoint files (:mod:`~hummingbird.models.checkpoints`),
Meta's DINOv3 layout (:mod:`~hummingbird.models.dinov3`), position-embedding rules
(:mod:`~hummingbird.models.pos_embed`), arithmetic precision (:mod:`~hummingbird.models.precision`) and
plain patch tokens as a feature source (:mod:`~hummingbird.models.features`; dense FUNGI features are the
:mod:`fungi_dense` package)."""
