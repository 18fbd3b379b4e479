"""CUDA paths (run by eval/gpu_check.sh where a GPU is lent; skipped elsewhere): precision detection,
bf16 against fp32 on the GPU, and the GPU query path against the CPU's."""

import pytest
import torch
import torch.nn.functional as F

from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.registry import load_dataset
from hummingbird.datasets.transforms import EvalResize
from hummingbird.memory.search import ExactSearch
from hummingbird.models.backbones import load_backbone
from hummingbird.models.features import TokenFeatures
from hummingbird.models.precision import resolve_precision
from hummingbird.pipeline import build_memory_bank, make_decoder, predictions

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_auto_precision_on_cuda_is_the_gpus_native_half_type():
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    assert resolve_precision("auto", "cuda") == expected


def test_bf16_tokens_on_cuda_are_close_to_fp32():
    encoder = load_backbone("timm:vit_small_patch16_224", weights="random", depth=4).to("cuda")
    images = torch.rand(4, 3, 224, 224, generator=torch.Generator().manual_seed(0)).cuda()
    exact = encoder(images)
    encoder.precision = "bf16"
    reduced = encoder(images)
    assert reduced.dtype == torch.float32 and reduced.device.type == "cuda"
    assert F.cosine_similarity(reduced, exact, dim=-1).min() > 0.99


def test_half_precision_exact_search_on_cuda_matches_cpu():
    g = torch.Generator().manual_seed(1)
    memory = F.normalize(torch.randn(20_000, 64, generator=g), dim=1)
    queries = F.normalize(torch.randn(500, 64, generator=g), dim=1)
    sims, ids = ExactSearch(memory, "cpu").search(queries, 10)
    sims_gpu, ids_gpu = ExactSearch(memory, "cuda").search(queries.cuda(), 10)
    assert torch.equal(ids_gpu.cpu(), ids)
    torch.testing.assert_close(sims_gpu.cpu(), sims, rtol=0, atol=1e-5)


def test_gpu_labels_match_cpu_labels_and_bf16_keeps_99_percent(folder_dataset):
    opts = LoaderOptions(batch_size=4, progress=False)
    encoder = load_backbone("timm:vit_small_patch16_224", weights="random", depth=4)
    features = TokenFeatures(encoder)
    train = load_dataset("folder", folder_dataset, "train", EvalResize(64))
    val = load_dataset("folder", folder_dataset, "val", EvalResize(64))
    bank = build_memory_bank(features, train, 64, opts=opts)
    cpu = torch.cat([p.labels for p in predictions(features, make_decoder(bank, k=5), val, opts)])
    features.to("cuda")
    gpu_opts = LoaderOptions(batch_size=4, progress=False, device="cuda")
    decoder = make_decoder(bank, k=5, index_spec="exact", device="cuda")
    gpu = torch.cat([p.labels.cpu() for p in predictions(features, decoder, val, gpu_opts)])
    assert (gpu == cpu).float().mean() >= 0.999
    encoder.precision = "bf16"
    bf16 = torch.cat([p.labels.cpu() for p in predictions(features, decoder, val, gpu_opts)])
    assert (bf16 == cpu).float().mean() >= 0.99
