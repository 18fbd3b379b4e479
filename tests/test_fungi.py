"""Dense FUNGI: per-token gradients, batch independence, projections, end to end."""

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from fungi_dense.features import FungiConfig, FungiFeatures, config_from_metadata, fit_pca
from fungi_dense.gradients import leaf_output, resolve_layer, tokens_and_layer_grads
from fungi_dense.objectives import infonce_loss, kl_uniform_loss
from fungi_dense.projection import DenseProjection, KhatriRaoProjection
from fungi_dense.support import SupportMemory, build_support_memory
from fungi_dense.variants import VARIANTS
from hummingbird.datasets.loader import LoaderOptions
from hummingbird.datasets.registry import load_dataset
from hummingbird.datasets.transforms import EvalResize
from hummingbird.errors import BankError, ConfigError
from hummingbird.memory.bank import MemoryBank
from hummingbird.models.backbones import load_backbone
from hummingbird.pipeline import build_memory_bank, evaluate, make_decoder

QUIET = LoaderOptions(batch_size=4, progress=False)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return load_backbone("dino_vits16", weights="random", depth=2, seed=4)


@pytest.fixture(scope="module")
def support(encoder):
    g = torch.Generator().manual_seed(9)
    tokens = F.normalize(torch.randn(60, encoder.embed_dim, generator=g), dim=1)
    return SupportMemory(tokens, torch.arange(60, dtype=torch.int32) // 10, [f"s{i}" for i in range(6)], {})


def _per_token_reference(encoder, layer, images, loss_of_tokens):
    """torch.func per-sample gradients: every token gets its own copy of the layer's weight and bias."""
    with torch.no_grad(), leaf_output(layer) as store:
        encoder.tokens_from_normalised(encoder.normalise(images))
    n = store["input"].shape[1]
    weight = layer.weight.detach().expand(images.shape[0], n, *layer.weight.shape).clone()
    bias = layer.bias.detach().expand(images.shape[0], n, layer.bias.shape[0]).clone()

    def loss(w, b):
        def replace(module, args, output):
            return torch.einsum("bnij,bnj->bni", w, args[0]) + b
        handle = layer.register_forward_hook(replace)
        try:
            return loss_of_tokens(encoder.tokens_from_normalised(encoder.normalise(images)))
        finally:
            handle.remove()

    return torch.func.grad(loss, argnums=(0, 1))(weight, bias)


@pytest.mark.parametrize("objective", ["infonce", "kl"])
def test_per_token_gradient_matches_torch_func_per_sample_gradients(encoder, support, objective):
    torch.manual_seed(1)
    images = torch.rand(2, 3, 32, 48)
    layer = resolve_layer(encoder, "blocks.-1.attn.proj")
    head = torch.randn(16, encoder.embed_dim) / encoder.embed_dim**0.5
    # negatives are constants of the loss (looked up once from the plain tokens)
    plain = rearrange(encoder(images), "b h w d -> b (h w) d")
    negatives = support.negatives(F.normalize(plain, dim=-1), 2)

    def loss_of_tokens(tokens):
        flat = rearrange(tokens, "b h w d -> b (h w) d")
        if objective == "kl":
            return kl_uniform_loss(flat @ head.T)
        return infonce_loss(flat @ head.T, negatives @ head.T, 0.07)

    _, inputs, (g,) = tokens_and_layer_grads(encoder, layer, images, lambda t: [loss_of_tokens(t)])
    ref_w, ref_b = _per_token_reference(encoder, layer, images, loss_of_tokens)
    prefix = encoder.num_prefix_tokens
    ours_w = torch.einsum("bpi,bpj->bpij", g, inputs)
    assert ours_w.abs().max() > 0
    torch.testing.assert_close(ours_w, ref_w[:, prefix:], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(g, ref_b[:, prefix:], atol=1e-5, rtol=1e-4)
    assert ref_w[:, :prefix].abs().max() == 0  # the CLS token's gradient is zero: it is not in any loss


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_features_of_an_image_do_not_depend_on_its_batch(encoder, support, variant):
    torch.manual_seed(2)
    images = torch.rand(3, 3, 32, 32)
    fungi = FungiFeatures(encoder, support, FungiConfig(objectives=("infonce", "kl"), projection="fast",
                                                        objective_variant=variant))
    together = fungi(images, ["q0", "q1", "q2"])
    alone = fungi(images[1:2], ["q1"])
    reordered = fungi(images.flip(0), ["q2", "q1", "q0"])
    torch.testing.assert_close(alone[0], together[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(reordered.flip(0), together, atol=1e-5, rtol=1e-5)
    assert together.shape == (3, 2, 2, 384 * 3) and fungi.dim == 384 * 3
    torch.testing.assert_close(together.norm(dim=-1), torch.ones(3, 2, 2))


def test_old_bank_without_objective_variant_means_patchwise(encoder, support, tmp_path):
    """Banks written before objective variants record no variant or negatives seed: they load as the
    patchwise objective they were built with, and pass the compatibility check."""
    config = FungiConfig(objective_variant="patchwise", projection="fast")
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    fungi = FungiFeatures(encoder, support, config)
    old_record = {k: v for k, v in config.to_dict().items() if k not in ("objective_variant", "negatives_seed")}
    meta = dict(fungi.metadata(), fungi=old_record, input_size=32)
    loaded = config_from_metadata(meta)
    assert loaded == config and meta["fungi"] == config.to_dict()
    torch.testing.assert_close(FungiFeatures(encoder, support, loaded)(images), fungi(images))
    bank = MemoryBank(torch.zeros(1, fungi.dim), torch.ones(1, 2), torch.zeros(1, 3, dtype=torch.int32),
                      torch.zeros(1, 6, dtype=torch.int32), dict(fungi.metadata(), fungi=old_record, input_size=32))
    bank.save(tmp_path / "old.safetensors")
    old = MemoryBank.load(tmp_path / "old.safetensors")
    config_from_metadata(old.metadata)
    old.check_compatible(dict(fungi.metadata(), input_size=32))
    with pytest.raises(BankError, match="fungi"):
        old.check_compatible(dict(FungiFeatures(encoder, support, FungiConfig(objective_variant="pooled")).metadata(),
                                  input_size=32))


def test_unknown_objective_variant_is_a_clear_error():
    with pytest.raises(ConfigError, match="fungi_objective_variant='nope': choose from dense-reference"):
        FungiConfig(objective_variant="nope")
    with pytest.raises(ConfigError, match="fetches 5 neighbours per token"):
        FungiConfig(objective_variant="dense-reference", negatives=6)


def test_negatives_skip_patches_of_the_same_image(support):
    query = support.tokens[10:12][None]  # two patches of support image s1, which are their own nearest
    other = support.negatives(query, 2, ["s1"])
    same = support.negatives(query, 2, None)
    torch.testing.assert_close(same[0, 0, 0], support.tokens[10])
    rows = [(support.tokens == t).all(1).nonzero().item() for t in other.reshape(-1, other.shape[-1])]
    assert all(r // 10 != 1 for r in rows)


def test_dense_projection_equals_direct_matrix_product():
    g, a = torch.randn(5, 6), torch.randn(5, 4)
    proj = DenseProjection(6, 4, dim=8, seed=3, chunk=2)
    r = proj.matrix()
    assert r.shape == (6 * 5, 8)
    torch.testing.assert_close(r.abs(), torch.full_like(r, 8**-0.5))  # ±1 / sqrt(k)
    assert (r > 0).any() and (r < 0).any()
    direct = torch.stack([torch.outer(g[t], torch.cat([a[t], torch.ones(1)])).flatten() @ r for t in range(5)])
    torch.testing.assert_close(proj(g, a), direct)
    torch.testing.assert_close(DenseProjection(6, 4, 8, seed=3).matrix(), r)  # seeded


FAST_SKETCH_MAX_MEAN_ERROR = 0.06  # stated bound: mean |cos error| at k = 384 for D = 384


def test_fast_sketch_preserves_inner_products_of_rank_one_gradients():
    torch.manual_seed(5)
    d, k, t = 384, 384, 200
    base_g, base_a = torch.randn(1, d), torch.randn(1, d)
    # correlated gradients so that cosines spread over (-1, 1), not just near 0
    g = base_g + torch.randn(t, d) * torch.rand(t, 1) * 2
    a = base_a + torch.randn(t, d) * torch.rand(t, 1) * 2
    a_tilde = torch.cat([a, torch.ones(t, 1)], 1)
    exact = (g @ g.T) * (a_tilde @ a_tilde.T)  # <g_t ⊗ ã_t, g_u ⊗ ã_u>_F
    exact_cos = exact / exact.diag().sqrt()[:, None] / exact.diag().sqrt()[None]
    sketch = F.normalize(KhatriRaoProjection(d, d, k, seed=0)(g, a), dim=1)
    error = (sketch @ sketch.T - exact_cos).abs()[~torch.eye(t, dtype=torch.bool)]
    assert exact_cos.std() > 0.1
    assert error.mean() < FAST_SKETCH_MAX_MEAN_ERROR


def test_pca_reduces_to_token_size_and_is_used(encoder, support):
    config = FungiConfig(objectives=("kl",), projection="fast", pca_dim=8)
    fungi = FungiFeatures(encoder, support, config)
    images = torch.rand(4, 3, 32, 32)
    fit_pca(fungi, images)
    out = fungi(images[:1])
    assert out.shape == (1, 2, 2, 8) and fungi.dim == 8
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(1, 2, 2))


def test_fungi_end_to_end_on_separable_blocks(folder_dataset):
    enc = load_backbone("timm:vit_small_patch16_224", weights="random", depth=4)
    train = load_dataset("folder", folder_dataset, "train", EvalResize(64))
    val = load_dataset("folder", folder_dataset, "val", EvalResize(64))
    support = build_support_memory(enc, train, 64, fraction=0.5, opts=QUIET)
    assert len(support) == 8 * 8  # 8 images x half of 16 patches
    for projection in ("fast", "dense"):
        fungi = FungiFeatures(enc, support, FungiConfig(projection=projection))
        bank = build_memory_bank(fungi, train, 64, opts=QUIET)
        assert bank.dim == 768 and bank.metadata["feature_kind"] == "fungi"
        assert bank.metadata["fungi"]["projection"] == projection
        result = evaluate(fungi, make_decoder(bank, k=5), val, QUIET)
        assert result["mIoU"] >= 0.9


def test_support_round_trip_and_mismatch(encoder, support, tmp_path):
    support.metadata.update(encoder.metadata(), input_size=32)
    path = support.save(tmp_path / "support.safetensors")
    loaded = SupportMemory.load(path)
    assert torch.equal(loaded.tokens, support.tokens) and loaded.image_ids == support.image_ids
    assert loaded.sha256 == support.sha256 and len(loaded.sha256) == 64
    loaded.check_compatible(dict(encoder.metadata(), input_size=32))
    with pytest.raises(Exception, match="support memory built for another pipeline; input_size"):
        loaded.check_compatible(dict(encoder.metadata(), input_size=64))


def test_cli_fungi_build_evaluate_segment(folder_dataset, tmp_path, capsys):
    from hummingbird.cli.main import main

    bank_path, support_path = tmp_path / "bank.safetensors", tmp_path / "support.safetensors"
    common = ["--weights", "random", "--num-workers", "0", "--no-progress"]
    assert main(["build-memory", "--dataset", "folder", "--data-root", str(folder_dataset), "--split", "train",
                 "--backbone", "dino_vits16", "--input-size", "64", "--no-augment", "--features", "fungi",
                 "--fungi-support", str(support_path), "--fungi-objectives", "infonce", "kl",
                 "--fungi-dim", "128", "--fungi-objective-variant", "dense-reference", "--fungi-seed", "3",
                 "--out", str(bank_path), *common]) == 0
    bank = MemoryBank.load(bank_path)
    assert bank.dim == 384 + 2 * 128 and bank.metadata["fungi"]["objectives"] == ["infonce", "kl"]
    recorded = bank.metadata["fungi"]
    assert recorded["objective_variant"] == "dense-reference"
    assert recorded["head_seed"] == recorded["projection_seed"] == recorded["negatives_seed"] == 3
    assert bank.metadata["fungi_support"]["sha256"] == SupportMemory.load(support_path).sha256
    results = tmp_path / "r.json"
    assert main(["evaluate", "--dataset", "folder", "--data-root", str(folder_dataset), "--bank", str(bank_path),
                 "--k", "5", "--out", str(results), *common]) == 0  # FUNGI settings and support from the bank
    assert "mIoU" in capsys.readouterr().out
    assert main(["segment", "--bank", str(bank_path), "--images", str(folder_dataset / "images" / "img009.png"),
                 "--out-dir", str(tmp_path / "seg"), "--k", "5", *common]) == 0
    assert (tmp_path / "seg" / "img009.png").is_file()

    other = tmp_path / "other.safetensors"
    other.write_bytes(support_path.read_bytes()[:-4] + b"    ")  # same size, other content → other hash
    code = main(["evaluate", "--dataset", "folder", "--data-root", str(folder_dataset), "--bank", str(bank_path),
                 "--fungi-support", str(other), "--out", str(results), *common])
    err = capsys.readouterr().err
    assert code == 2 and "other.safetensors" in err and ("differs" in err or "readable" in err)


@pytest.mark.parametrize("name", ["dino_vits16", "dinov2_vits14_reg"])
def test_prefix_tokens_come_from_the_same_pass_as_the_patch_tokens(name):
    enc = load_backbone(name, weights="random", depth=1, seed=2)
    x = enc.normalise(torch.rand(2, 3, 2 * enc.patch_size, 3 * enc.patch_size))
    with torch.no_grad():
        tokens, prefix = enc.tokens_and_prefix_from_normalised(x)
        sequence = enc.model.forward_features(x)  # final norm over every token, prefix first
    assert prefix.shape == (2, enc.num_prefix_tokens, enc.embed_dim) and tokens.shape == (2, 2, 3, enc.embed_dim)
    torch.testing.assert_close(prefix, sequence[:, : enc.num_prefix_tokens])
    torch.testing.assert_close(tokens.reshape(2, 6, -1), sequence[:, enc.num_prefix_tokens:])
