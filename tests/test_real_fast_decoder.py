"""The fast query path on real VOC images with real weights (skipped when they are absent): the same
predictions as the old exact path for small memories (same faiss search, upsampling that changes no
label), and the documented agreement (≥ 99.5 % of pixels) when ``auto`` switches to clustered search.
(Torch's exact search orders neighbours whose similarities differ by ~1e-7 differently from faiss's
BLAS, which changed 11 of 602,112 pixels here: why ``auto`` keeps faiss for exact search on CPUs.)"""

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from realdata import real_voc, real_weights

import hummingbird.memory.search as search
from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.registry import load_dataset
from hummingbird.datasets.transforms import EvalResize
from hummingbird.memory.decoder import soft_labels
from hummingbird.memory.faiss_index import NeighbourIndex
from hummingbird.models.backbones import load_backbone
from hummingbird.models.features import TokenFeatures
from hummingbird.pipeline import build_memory_bank, make_decoder

pytestmark = pytest.mark.realdata
SIZE = 224  # 16 x 16 patches of ViT-S/14: a real memory of 30k patches from 120 images stays fast


def _old_predict(memory, labels, queries, size, k=30, temperature=0.02):
    """The query path before: faiss exact search, label gather, per-image bilinear upsampling."""
    b, h, w, d = queries.shape
    sims, ids = NeighbourIndex(d).add(memory).search(queries.reshape(-1, d), k)
    dist = soft_labels(sims, labels[ids], temperature).view(b, h, w, -1)
    return torch.stack([F.interpolate(rearrange(x, "h w c -> 1 c h w"), size=size, mode="bilinear",
                                      align_corners=False).argmax(1)[0] for x in dist])


@pytest.fixture(scope="module")
def real_setup():
    name, weights = real_weights()
    root = real_voc()
    features = TokenFeatures(load_backbone(name, weights=weights))
    opts = LoaderOptions(batch_size=8, num_workers=0, progress=False)
    train = load_dataset("voc", root, "train", EvalResize(SIZE)).first(120)
    val = load_dataset("voc", root, "val", EvalResize(SIZE)).first(12)
    bank = build_memory_bank(features, train, SIZE, opts=opts)  # every labelled patch: ~30k
    batch = next(iter(torch.utils.data.DataLoader(val, batch_size=12)))
    return bank, features(batch["image"]), tuple(batch["mask"].shape[-2:])


def test_small_memory_predictions_equal_the_old_exact_path(real_setup):
    bank, queries, size = real_setup
    small = torch.arange(0, len(bank), 8)  # ~5k rows: auto keeps exact search
    memory, labels = bank.features[small], bank.labels[small].float()
    from hummingbird.memory.bank import MemoryBank

    part = MemoryBank(memory, labels, bank.sources[small], bank.views, bank.metadata)
    decoder = make_decoder(part)
    assert decoder.index.spec == "Flat"  # auto: faiss exact search on the CPU
    assert torch.equal(decoder.predict(queries, size), _old_predict(memory, labels, queries, size))


def test_clustered_default_agrees_with_exact_search(real_setup, monkeypatch):
    bank, queries, size = real_setup
    assert len(bank) > 20_000
    monkeypatch.setattr(search, "CPU_CLUSTERED_FROM", 20_000)  # whatever the threshold, this memory clusters
    decoder = make_decoder(bank)
    assert isinstance(decoder.index, search.ClusteredSearch)
    fast = decoder.predict(queries, size)
    exact = _old_predict(bank.features, bank.labels.float(), queries, size)
    agreement = float((fast == exact).float().mean())
    print(f"\n{len(bank)} memory patches, clustered (nlist {decoder.index.nlist}, nprobe {decoder.index.nprobe}): "
          f"pixel agreement with exact search {100 * agreement:.3f} %")
    assert agreement >= 0.995
