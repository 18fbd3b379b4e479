"""The support memory: plain patch tokens of the training images, where each patch's InfoNCE
negatives (its nearest support patches from *other* images) are looked up.

Built once per (backbone, weights, input size, training set), saved to one ``.safetensors`` file and
recorded (path and SHA-256) in the metadata of every bank built with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from tqdm.auto import tqdm

from hummingbird.datasets.base import SegmentationDataset
from hummingbird.datasets.loader import LoaderOptions, make_loader
from hummingbird.errors import ConfigError, option
from hummingbird.files.tensorfile import read_tensor_file, write_tensor_file
from hummingbird.memory.bank import check_metadata, with_legacy_encoder_fields
from hummingbird.memory.faiss_index import NeighbourIndex
from hummingbird.models.backbones import PatchEncoder
from hummingbird.models.checkpoints import file_sha256

SUPPORT_FIELDS = ("backbone", "weights", "layer", "patch_size", "pos_embed", "normalisation", "input_size")


@dataclass
class SupportMemory:
    """Unit-norm support tokens ``(N, D)``, the dataset index of each token's image ``(N,)``, the
    image ids (by dataset index), optional PCA ``mean (F,)``/``components (d, F)`` of FUNGI features,
    and metadata."""

    tokens: torch.Tensor
    image_index: torch.Tensor
    image_ids: list[str]
    metadata: dict = field(default_factory=dict)
    pca: dict[str, torch.Tensor] = field(default_factory=dict)
    path: Path | None = None
    sha256: str | None = None

    def __post_init__(self):
        self._index: NeighbourIndex | None = None
        self._position = {image_id: i for i, image_id in enumerate(self.image_ids)}
        counts = torch.bincount(self.image_index.long()) if len(self.image_index) else torch.zeros(1)
        self.max_per_image = int(counts.max())

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def index(self) -> NeighbourIndex:
        if self._index is None:
            spec = self.metadata.get("index", "Flat")
            self._index = NeighbourIndex(self.tokens.shape[1], spec, use_gpu="auto").add(self.tokens)
        return self._index

    def negatives(self, queries: torch.Tensor, count: int, image_ids: list[str] | None = None) -> torch.Tensor:
        """Tokens of each query patch's ``count`` nearest support patches from other images.

        Args:
            queries: ``(B, P, D)`` unit-norm plain tokens.
            count: negatives per patch ``M``.
            image_ids: the queries' image ids; support patches of the same image are skipped.

        Returns:
            ``(B, P, M, D)`` support tokens (on ``queries.device``).
        """
        b, p, d = queries.shape
        own = torch.tensor([self._position.get(i, -1) for i in image_ids] if image_ids else [-1] * b)
        extra = self.max_per_image if bool((own >= 0).any()) else 0
        k = min(count + extra, len(self))
        _, ids = self.index().search(queries.reshape(b * p, d), k)
        same_image = self.image_index[ids].long() == own.repeat_interleave(p)[:, None]
        # stable sort puts other-image neighbours first, keeping their similarity order
        order = torch.argsort(same_image.to(torch.int8), dim=1, stable=True)[:, :count]
        chosen = torch.gather(ids, 1, order)
        return self.tokens[chosen].to(queries.device, queries.dtype).reshape(b, p, count, d)

    def save(self, path: str | Path) -> Path:
        """Write atomically; records the file's SHA-256 on this object."""
        path = Path(path)
        tensors = {"tokens": self.tokens.contiguous(), "image_index": self.image_index.contiguous(),
                   **{f"pca_{k}": v.contiguous() for k, v in self.pca.items()}}
        meta = dict(self.metadata, image_ids=self.image_ids)
        write_tensor_file(path, tensors, "fungi_support", meta)
        self.path, self.sha256 = path, file_sha256(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SupportMemory":
        path = Path(path)
        tensors, meta = read_tensor_file(path, "fungi_support", "FUNGI support memory")
        image_ids = meta.pop("image_ids")
        pca = {k[len("pca_"):]: v for k, v in tensors.items() if k.startswith("pca_")}
        return cls(tensors["tokens"], tensors["image_index"], image_ids, with_legacy_encoder_fields(meta), pca, path,
                   file_sha256(path))

    def check_compatible(self, encoder_meta: dict) -> None:
        check_metadata(self.metadata, encoder_meta, SUPPORT_FIELDS, str(self.path), what="support memory")


@torch.no_grad()
def build_support_memory(encoder: PatchEncoder, dataset: SegmentationDataset, input_size: int,
                         fraction: float = 0.5, seed: int = 0, index: str = "Flat",
                         opts: LoaderOptions | None = None) -> SupportMemory:
    """Plain tokens of every image of ``dataset`` (its transform must resize to ``input_size``), of
    which a seeded random ``fraction`` of patches per image is kept."""
    opts = opts or LoaderOptions()
    if not 0 < fraction <= 1:
        raise ConfigError(f"{option('fungi_support_fraction')} must be in (0, 1], got {fraction}")
    generator = torch.Generator().manual_seed(seed)
    loader = make_loader(dataset, opts)
    tokens, owners = [], []
    for batch in tqdm(loader, desc="support memory", disable=not opts.progress, unit="batch"):
        t = F.normalize(encoder(batch["image"].to(opts.device)), dim=-1).cpu()
        t = rearrange(t, "b h w d -> b (h w) d")
        b, p, _ = t.shape
        keep = max(1, round(fraction * p))
        picks = torch.rand(b, p, generator=generator).argsort(1)[:, :keep].sort(1).values
        tokens.append(torch.gather(t, 1, picks[..., None].expand(-1, -1, t.shape[-1])).reshape(-1, t.shape[-1]))
        owners.append(batch["index"].repeat_interleave(keep).to(torch.int32))
    meta = dict(encoder.metadata(), input_size=input_size, fraction=fraction, seed=seed, index=index,
                dataset=dataset.name, split=dataset.split, num_images=len(dataset))
    return SupportMemory(torch.cat(tokens), torch.cat(owners), [s.id for s in dataset.samples], meta)
