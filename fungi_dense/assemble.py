"""Putting a FUNGI feature source together: load or build its support memory, fit PCA if asked."""

from __future__ import annotations

from pathlib import Path

import torch

from fungi_dense.features import FungiConfig, FungiFeatures, fit_pca
from fungi_dense.support import SupportMemory, build_support_memory
from hummingbird.datasets.base import SegmentationDataset
from hummingbird.datasets.loader import LoaderOptions
from hummingbird.errors import BankError, ConfigError, note, option
from hummingbird.models.backbones import PatchEncoder

PCA_FIT_IMAGES = 16


def fungi_features(encoder: PatchEncoder, config: FungiConfig, support_path: str | Path | None,
                   input_size: int, training: SegmentationDataset | None = None, support_fraction: float = 0.5,
                   support_index: str = "Flat", seed: int = 0, expected_sha256: str | None = None,
                   opts: LoaderOptions | None = None) -> FungiFeatures:
    """A :class:`FungiFeatures` whose support memory is read from ``support_path`` or, if that file
    does not exist and ``training`` (resized to ``input_size``, no augmentation) is given, built from it
    and saved there.

    ``expected_sha256`` (from a bank's metadata) makes a different support file an error, since it
    would change every query feature.
    """
    support = None
    if "infonce" in config.objectives or config.pca_dim:
        if support_path is None:
            raise ConfigError(f"FUNGI features need {option('fungi_support', 'PATH', raw=True)} (a support memory file to read or create)")
        support_path = Path(support_path)
        if support_path.is_file():
            support = SupportMemory.load(support_path)
            support.check_compatible(dict(encoder.metadata(), input_size=input_size))
        elif training is not None:
            note(f"building FUNGI support memory from {len(training)} images → {support_path}",
                 opts is not None and opts.progress)
            support = build_support_memory(encoder, training, input_size, fraction=support_fraction, seed=seed,
                                           index=support_index, opts=opts)
            support.save(support_path)
        else:
            raise BankError(f"{support_path}: FUNGI support memory file not found (pass {option('fungi_support')})")
        if expected_sha256 and support.sha256 != expected_sha256:
            raise BankError(f"{support_path}: support memory differs from the one the bank was built with "
                            f"(sha256 {support.sha256[:12]}… vs {expected_sha256[:12]}…)")
    features = FungiFeatures(encoder, support, config)
    if config.pca_dim and "components" not in support.pca:
        if training is None:
            raise BankError(f"{support_path}: holds no PCA for {option('fungi_pca_dim', config.pca_dim)}")
        sample = [training[i] for i in range(min(PCA_FIT_IMAGES, len(training)))]
        device = next(encoder.parameters()).device
        fit_pca(features, torch.stack([s["image"] for s in sample]).to(device), [s["id"] for s in sample])
        support.save(support_path)
    return features
