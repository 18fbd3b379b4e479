"""--precision: run-time detection (with its fp32 fallback), the encoder honouring and recording it,
bf16 labels against fp32 labels, and reduced-precision search with float32 re-ranking."""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from hummingbird.cli.main import main
from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.registry import load_dataset
from hummingbird.datasets.transforms import EvalResize
from hummingbird.errors import ConfigError
from hummingbird.evaluation.protocols import PROTOCOLS
from hummingbird.memory.bank import MemoryBank
from hummingbird.memory.search import ClusteredSearch, ExactSearch
from hummingbird.models import precision
from hummingbird.models.backbones import load_backbone
from hummingbird.models.features import TokenFeatures
from hummingbird.pipeline import build_memory_bank, make_decoder, predictions

QUIET = LoaderOptions(batch_size=4, progress=False)


@pytest.fixture
def cpu_with(monkeypatch):
    """Pretend the CPU has exactly the given /proc/cpuinfo flags."""
    def set_flags(*flags):
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    return set_flags


def test_auto_is_bf16_only_where_the_cpu_has_native_bf16(cpu_with):
    cpu_with("avx2", "fma")
    assert precision.resolve_precision("auto", "cpu") == "fp32"
    cpu_with("avx512f", "avx512_bf16")
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    cpu_with("avx512f", "amx_tile", "amx_bf16")
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    assert precision.resolve_precision(None, "cpu") == "bf16"
    cpu_with("avx2")
    assert precision.resolve_precision("bf16", "cpu") == "bf16"  # asked for explicitly: honoured
    assert precision.resolve_precision("fp32", "cpu") == "fp32"


def test_fp16_on_a_cpu_without_native_fp16_and_unknown_names_are_refused(cpu_with):
    cpu_with("avx512f", "avx512_bf16")
    with pytest.raises(ConfigError, match="no native float16"):
        precision.resolve_precision("fp16", "cpu")
    cpu_with("amx_bf16", "amx_fp16")
    assert precision.resolve_precision("fp16", "cpu") == "fp16"
    with pytest.raises(ConfigError, match="choose from auto, fp32, bf16, fp16"):
        precision.resolve_precision("int8", "cpu")
    with pytest.raises(ConfigError, match="precision='half'"):
        load_backbone("timm:vit_small_patch16_224", weights="random", depth=1, precision="half")


def test_peer_preset_keeps_fp32():
    assert PROTOCOLS["open-hbird"].precision == "fp32" and PROTOCOLS["default"].precision == "auto"


def test_encoder_honours_and_records_its_precision(cpu_with):
    encoder = load_backbone("timm:vit_small_patch16_224", weights="random", depth=2)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    seen = []
    handle = encoder.model.blocks[0].attn.qkv.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    exact = encoder(images)
    encoder.precision = "bf16"
    reduced = encoder(images)
    handle.remove()
    assert seen == [torch.float32, torch.bfloat16]
    assert reduced.dtype == torch.float32 and reduced.shape == exact.shape == (2, 4, 4, 384)
    assert not torch.equal(reduced, exact)
    assert F.cosine_similarity(reduced, exact, dim=-1).min() > 0.99
    assert encoder.metadata()["precision"] == "bf16"
    encoder.precision = "auto"
    cpu_with("avx2")
    assert encoder.metadata()["precision"] == "fp32"


def test_bf16_labels_match_fp32_labels_on_a_fixed_case(folder_dataset):
    """The stated tolerance (README 'Precision'): ≥ 99 % of pixels keep their fp32 label."""
    encoder = load_backbone("timm:vit_small_patch16_224", weights="random", depth=4)
    features = TokenFeatures(encoder)
    train = load_dataset("folder", folder_dataset, "train", EvalResize(64))
    val = load_dataset("folder", folder_dataset, "val", EvalResize(64))
    bank = build_memory_bank(features, train, 64, opts=QUIET)
    decoder = make_decoder(bank, k=5)
    fp32 = torch.cat([p.labels for p in predictions(features, decoder, val, QUIET)])
    encoder.precision = "bf16"
    bf16_queries = torch.cat([p.labels for p in predictions(features, decoder, val, QUIET)])
    bf16_bank = build_memory_bank(features, train, 64, opts=QUIET)
    assert bf16_bank.metadata["precision"] == "bf16" and bank.metadata["precision"] == "fp32"
    bf16_all = torch.cat([p.labels for p in predictions(features, make_decoder(bf16_bank, k=5), val, QUIET)])
    assert (bf16_queries == fp32).float().mean() >= 0.99  # an fp32 bank searched with bf16 queries
    assert (bf16_all == fp32).float().mean() >= 0.99


def test_cli_records_precision_in_bank_and_results(folder_dataset, tmp_path):
    bank_path, results = tmp_path / "bank.safetensors", tmp_path / "results.json"
    common = ["--weights", "random", "--input-size", "64", "--num-workers", "0", "--no-progress"]
    assert main(["build-memory", "--dataset", "folder", "--data-root", str(folder_dataset), "--split", "train",
                 "--backbone", "dino_vits16", "--no-augment", "--precision", "fp32", "--out", str(bank_path),
                 *common]) == 0
    assert MemoryBank.load(bank_path).metadata["precision"] == "fp32"
    assert main(["evaluate", "--dataset", "folder", "--data-root", str(folder_dataset), "--bank", str(bank_path),
                 "--k", "5", "--precision", "bf16", "--out", str(results), *common]) == 0
    payload = json.loads(results.read_text())
    assert payload["config"]["precision"] == "bf16" and payload["bank"]["precision"] == "fp32"
    assert payload["mIoU"] >= 0.9


def test_cli_fp16_on_this_cpu_is_one_clear_error(folder_dataset, tmp_path, capsys, cpu_with):
    cpu_with("avx2")
    code = main(["build-memory", "--dataset", "folder", "--data-root", str(folder_dataset), "--split", "train",
                 "--backbone", "dino_vits16", "--weights", "random", "--input-size", "64", "--precision", "fp16",
                 "--device", "cpu", "--no-progress", "--out", str(tmp_path / "b.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and "no native float16" in err and "Traceback" not in err


def _unit_rows(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(32, d, generator=g), dim=1)
    return F.normalize(centres[torch.randint(0, 32, (n,), generator=g)] + 0.5 * torch.randn(n, d, generator=g)
                       / d**0.5, dim=1)


def test_bf16_exact_search_is_certified_exact():
    memory, queries = _unit_rows(3000, 64, 0), _unit_rows(200, 64, 1)
    sims, ids = ExactSearch(memory, "cpu", score_dtype=None).search(queries, 10)
    sims16, ids16 = ExactSearch(memory, "cpu", score_dtype=torch.bfloat16).search(queries, 10)
    assert torch.equal(ids16, ids)
    torch.testing.assert_close(sims16, sims, rtol=0, atol=1e-5)


def test_bf16_clustered_search_reranks_to_exact_similarities():
    memory, queries = _unit_rows(4000, 64, 2), _unit_rows(300, 64, 3)
    fp32 = ClusteredSearch(memory, "cpu", nlist=32, nprobe=8)
    reduced = ClusteredSearch(memory, "cpu", nlist=32, nprobe=8, score_dtype=torch.bfloat16)
    sims, ids = fp32.search(queries, 10)
    sims16, ids16 = reduced.search(queries, 10)
    # returned similarities are the float32 products of the returned rows, best first
    torch.testing.assert_close(sims16, torch.einsum("qd,qkd->qk", queries, memory[ids16]), rtol=0, atol=1e-5)
    assert (sims16[:, :-1] >= sims16[:, 1:]).all()
    same = (ids16.sort(1).values == ids.sort(1).values).all(1).float().mean()
    assert same >= 0.98


def test_segmenter_api_takes_precision_and_banks_cross_precisions(folder_dataset, tmp_path):
    from hummingbird import Segmenter

    images = [folder_dataset / "images" / f"img{i:03d}.png" for i in range(8)]
    masks = [folder_dataset / "masks" / f"img{i:03d}.png" for i in range(8)]
    built = Segmenter.from_examples(images, masks, backbone="dino_vits16", weights="random", input_size=64, k=5,
                                    precision="fp32")
    assert built.bank.metadata["precision"] == "fp32"
    path = built.save(tmp_path / "bank.safetensors")
    loaded = Segmenter.load(path, precision="bf16")
    assert loaded.pipeline.encoder.active_precision == "bf16"
    image = folder_dataset / "images" / "img010.png"
    assert (loaded.segment(image) == built.segment(image)).mean() >= 0.99
    with pytest.raises(ConfigError, match="precision="):
        Segmenter.load(path, precision="half")


def test_compile_on_a_cpu_prints_no_cuda_runtime_line(tmp_path):
    """torch logs "No CUDA runtime is found" when a CUDA toolkit folder exists on a machine without a GPU and
    torch.compile loads its C++ extension helpers; the compiled encoder holds that line back."""
    (tmp_path / "cuda").mkdir()
    code = ("import torch; from hummingbird.models.backbones import load_backbone; "
            "e = load_backbone('timm:vit_tiny_patch16_224', weights='random', depth=1).compiled(); "
            "print(tuple(e(torch.rand(1, 3, 32, 32)).shape))")
    env = dict(os.environ, CUDA_HOME=str(tmp_path / "cuda"), CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0 and done.stdout.split() == ["(1,", "2,", "2,", "192)"], done.stderr
    assert "No CUDA runtime" not in done.stderr, done.stderr
