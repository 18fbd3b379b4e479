"""The two other dense evaluations reported beside Hummingbird, over the same frozen patch features:

* linear segmentation probe — a linear layer on patch features trained with cross-entropy on the
  training split (logits upsampled bilinearly to the mask), mIoU on the validation split;
* unsupervised segmentation by overclustering — k-means (faiss) on validation patch features,
  clusters matched to classes (Hungarian one-to-one when K equals the class count, else each cluster
  to the class it overlaps most), mIoU.
"""

from __future__ import annotations

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from scipy.optimize import linear_sum_assignment
from tqdm.auto import tqdm

from hummingbird.datasets.base import IGNORE_INDEX, SegmentationDataset
from hummingbird.datasets.loader import LoaderOptions, make_loader
from hummingbird.evaluation.metrics import ConfusionMatrix, scores


def encode_split(features, dataset: SegmentationDataset, opts: LoaderOptions, desc: str):
    """Features ``(N, h, w, D)`` float16 and masks ``(N, S, S)`` uint8 of every image of ``dataset``."""
    feats, masks = [], []
    for batch in tqdm(make_loader(dataset, opts), desc=desc, disable=not opts.progress, unit="batch"):
        feats.append(features(batch["image"].to(opts.device), image_ids=list(batch["id"])).cpu().half())
        masks.append(batch["mask"].to(torch.uint8))
    return torch.cat(feats), torch.cat(masks)


def train_linear_probe(train_feats: torch.Tensor, train_masks: torch.Tensor, num_classes: int, epochs: int = 20,
                       lr: float = 1e-3, batch_size: int = 16, seed: int = 0, progress: bool = True) -> torch.nn.Linear:
    """Fit ``Linear(D, C)`` on features ``(N, h, w, D)`` against masks ``(N, S, S)`` (255 ignored) with
    Adam and pixel-level cross-entropy of bilinearly upsampled logits."""
    torch.manual_seed(seed)
    probe = torch.nn.Linear(train_feats.shape[-1], num_classes)
    optimiser = torch.optim.Adam(probe.parameters(), lr=lr)
    order_rng = torch.Generator().manual_seed(seed)
    size = tuple(train_masks.shape[-2:])
    for _ in tqdm(range(epochs), desc="linear probe", disable=not progress, unit="epoch"):
        for idx in torch.randperm(len(train_feats), generator=order_rng).split(batch_size):
            logits = rearrange(probe(train_feats[idx].float()), "b h w c -> b c h w")
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            loss = F.cross_entropy(logits, train_masks[idx].long(), ignore_index=IGNORE_INDEX)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return probe.eval()


@torch.no_grad()
def linear_probe_scores(probe: torch.nn.Linear, feats: torch.Tensor, masks: torch.Tensor,
                        class_names: list[str]) -> dict:
    """mIoU of ``probe`` on features ``(N, h, w, D)`` and masks ``(N, S, S)``."""
    confusion = ConfusionMatrix(len(class_names), IGNORE_INDEX)
    for f, m in zip(feats.split(8), masks.split(8)):
        logits = F.interpolate(rearrange(probe(f.float()), "b h w c -> b c h w"), size=tuple(m.shape[-2:]),
                               mode="bilinear", align_corners=False)
        confusion.update(logits.argmax(1), m.long())
    return dict(scores(confusion.matrix, class_names), confusion_matrix=confusion.matrix.tolist())


def cluster_patches(feats: torch.Tensor, num_clusters: int, seed: int = 0, iterations: int = 20,
                    restarts: int = 5, max_train: int = 1_000_000) -> torch.Tensor:
    """Spherical k-means (faiss) of patch features ``(N, h, w, D)`` → cluster ids ``(N, h, w)``; the best
    of ``restarts`` random initialisations (one run often merges two clusters when K is small)."""
    n, h, w, d = feats.shape
    vectors = np.ascontiguousarray(F.normalize(feats.float().reshape(-1, d), dim=1).numpy())
    rng = np.random.default_rng(seed)
    sample = vectors[rng.choice(len(vectors), min(max_train, len(vectors)), replace=False)]
    kmeans = faiss.Kmeans(d, num_clusters, niter=iterations, nredo=restarts, seed=seed, spherical=True,
                          verbose=False, min_points_per_centroid=1)
    kmeans.train(sample)
    _, assignment = kmeans.index.search(vectors, 1)
    return torch.from_numpy(assignment.reshape(n, h, w).astype(np.int64))


def cluster_to_class(overlap: np.ndarray) -> np.ndarray:
    """Class of each cluster from the ``(K, C)`` pixel overlap: Hungarian one-to-one when ``K == C``,
    else each cluster to the class it overlaps most."""
    k, c = overlap.shape
    if k == c:
        clusters, classes = linear_sum_assignment(overlap, maximize=True)
        mapping = np.empty(k, dtype=np.int64)
        mapping[clusters] = classes
        return mapping
    return overlap.argmax(1)


def overcluster_scores(clusters: torch.Tensor, masks: torch.Tensor, num_clusters: int, class_names: list[str]) -> dict:
    """mIoU of cluster ids ``(N, h, w)`` (upsampled nearest to the masks ``(N, S, S)``) after matching."""
    c = len(class_names)
    overlap = np.zeros((num_clusters, c), dtype=np.int64)
    upsampled = []
    for cl, m in zip(clusters.split(16), masks.split(16)):
        up = F.interpolate(cl[:, None].float(), size=tuple(m.shape[-2:]), mode="nearest")[:, 0].long()
        keep = m != IGNORE_INDEX
        overlap += np.bincount((up[keep] * c + m[keep].long()).numpy(), minlength=num_clusters * c).reshape(-1, c)
        upsampled.append(up)
    mapping = torch.from_numpy(cluster_to_class(overlap))
    confusion = ConfusionMatrix(c, IGNORE_INDEX)
    for up, m in zip(upsampled, masks.split(16)):
        confusion.update(mapping[up], m.long())
    return dict(scores(confusion.matrix, class_names), clusters=num_clusters,
                matching="hungarian" if num_clusters == c else "majority", confusion_matrix=confusion.matrix.tolist())
