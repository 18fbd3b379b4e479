"""Memory bank files, faiss search, decoder arithmetic, metrics."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hummingbird.errors import BankError, ConfigError
from hummingbird.evaluation.metrics import ConfusionMatrix, open_hbird_hungarian_scores, scores
from hummingbird.memory.bank import MemoryBank
from hummingbird.memory.decoder import HummingbirdDecoder, soft_labels
from hummingbird.memory.faiss_index import NeighbourIndex


def _bank(n=50, d=8, c=3, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(n, d, generator=g), dim=1).to(dtype)
    labels = torch.softmax(torch.randn(n, c, generator=g), dim=1)
    sources = torch.randint(0, 10, (n, 3), generator=g, dtype=torch.int32)
    views = torch.randint(0, 100, (10, 6), generator=g, dtype=torch.int32)
    return MemoryBank(feats, labels, sources, views, {"backbone": "dino_vits16", "weights": "sha256:ab", "layer": 11,
                                               "patch_size": 16, "feature_kind": "tokens", "feature_dim": d,
                                               "input_size": 512, "class_names": ["a", "b", "c"]})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_bank_round_trip_is_bit_identical(tmp_path, dtype):
    bank = _bank(dtype=dtype)
    path = bank.save(tmp_path / "sub" / "bank.safetensors")
    loaded = MemoryBank.load(path)
    for name in ("features", "labels", "sources", "views"):
        a, b = getattr(bank, name), getattr(loaded, name)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a.view(torch.uint8), b.view(torch.uint8))  # same bytes, not just close values
    assert loaded.metadata["backbone"] == "dino_vits16" and loaded.metadata["num_patches"] == 50
    assert loaded.class_names == ["a", "b", "c"]
    assert [p.name for p in path.parent.iterdir()] == ["bank.safetensors"]  # no temporary left behind


def test_bank_compatibility_errors_list_fields():
    bank = _bank()
    bank.check_compatible({"backbone": "dino_vits16", "feature_dim": 8, "input_size": 512})
    with pytest.raises(BankError, match=r"bank.x: built for another pipeline; backbone: bank has 'dino_vits16', "
                                        r"pipeline has 'dinov2_vits14'; feature_dim: bank has 8, pipeline has 384"):
        bank.check_compatible({"backbone": "dinov2_vits14", "feature_dim": 384}, source="bank.x")


def test_unreadable_bank_names_file(tmp_path):
    path = tmp_path / "bank.safetensors"
    path.write_bytes(b"\x00" * 20)
    with pytest.raises(BankError, match="bank.safetensors: not a readable memory bank"):
        MemoryBank.load(path)
    with pytest.raises(BankError, match="nope.safetensors: memory bank file not found"):
        MemoryBank.load(tmp_path / "nope.safetensors")


def test_flat_index_matches_brute_force():
    bank = _bank(n=200, d=16)
    queries = F.normalize(torch.randn(10, 16), dim=1)
    sims, ids = NeighbourIndex(16).add(bank.features).search(queries, 5)
    exact = queries @ bank.features.T
    top = exact.topk(5, dim=1)
    torch.testing.assert_close(sims, top.values, atol=1e-5, rtol=0)
    assert torch.equal(ids, top.indices)


def test_ivf_index_recall_and_bad_spec():
    g = torch.Generator().manual_seed(1)
    centres = F.normalize(torch.randn(20, 32, generator=g), dim=1)
    feats = F.normalize(centres[torch.randint(0, 20, (4000,), generator=g)] + 0.3 * torch.randn(4000, 32, generator=g), dim=1)
    queries = feats[:100] + 0.01 * torch.randn(100, 32, generator=g)
    _, exact = NeighbourIndex(32).add(feats).search(queries, 10)
    _, approx = NeighbourIndex(32, "IVF16,Flat", nprobe=8).add(feats).search(queries, 10)
    recall = np.mean([len(set(a.tolist()) & set(e.tolist())) / 10 for a, e in zip(approx, exact)])
    assert recall > 0.9
    with pytest.raises(ConfigError, match="index='IVFbogus' is not a faiss factory string"):
        NeighbourIndex(32, "IVFbogus")
    with pytest.raises(ConfigError, match="k=50 neighbours asked for but the memory holds only 10 patches"):
        NeighbourIndex(32).add(feats[:10]).search(queries, 50)


def test_soft_labels_hand_computed():
    sims = torch.tensor([[0.9, 0.8, 0.1]])
    labels = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]])
    tau = 0.1
    e = [math.exp(s / tau) for s in (0.9, 0.8, 0.1)]
    w = [x / sum(e) for x in e]
    expected = torch.tensor([[w[0] + 0.5 * w[2], w[1] + 0.5 * w[2]]])
    torch.testing.assert_close(soft_labels(sims, labels, tau), expected)


def test_decoder_labels_patches_from_neighbours_and_upsamples():
    # memory: two directions, class 0 along e0 and class 1 along e1
    memory = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    decoder = HummingbirdDecoder(NeighbourIndex(2).add(memory), labels, k=2, temperature=0.02)
    query = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])  # (1, 1, 2, 2): left e0, right e1
    dist = decoder.patch_distributions(query)
    # left patch: neighbours row0 (s=1) and row2 (s=0.8), both class 0
    torch.testing.assert_close(dist[0, 0, 0], torch.tensor([1.0, 0.0]))
    w = torch.softmax(torch.tensor([1.0, 0.6]) / 0.02, 0)  # right patch: row1 (class 1) and row2 (class 0)
    torch.testing.assert_close(dist[0, 0, 1], torch.tensor([w[1], w[0]]))
    pred = decoder.predict(query, (4, 8))
    assert pred.shape == (1, 4, 8)
    assert (pred[0, :, :4] == 0).all() and (pred[0, :, 4:] == 1).all()


def test_confusion_matrix_and_miou_hand_computed():
    target = torch.tensor([[0, 0, 1, 1, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1, 0, 2]])
    cm = ConfusionMatrix(3)
    cm.update(pred[:, :3], target[:, :3])
    cm.update(pred[:, 3:], target[:, 3:])  # accumulates across updates; 255 skipped
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    result = scores(cm.matrix, ["a", "b", "c"])
    # IoU a = 1/(2+2-1) = 1/3, b = 2/(2+3-2) = 2/3, c = 0/(1+0-0) = 0
    assert result["per_class_iou"] == pytest.approx({"a": 1 / 3, "b": 2 / 3, "c": 0.0})
    assert result["mIoU"] == pytest.approx(1 / 3)
    assert result["pixel_accuracy"] == pytest.approx(3 / 5)


def test_absent_classes_are_excluded_from_mean():
    result = scores(torch.tensor([[4, 0, 0], [0, 0, 0], [0, 0, 2]]))
    assert result["per_class_iou"]["class_1"] is None and result["mIoU"] == pytest.approx(1.0)


def test_hungarian_matching_undoes_permuted_labels():
    target = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    renamed = torch.tensor([2, 0, 1])[target]  # a perfect labelling with classes renamed 0→2, 1→0, 2→1
    cm = ConfusionMatrix(3)
    cm.update(renamed, target)
    assert scores(cm.matrix)["mIoU"] == 0.0
    matched = open_hbird_hungarian_scores(cm.matrix)
    assert matched["mIoU"] == pytest.approx(1.0) and matched["matching"] == {2: 0, 0: 1, 1: 2}


def test_open_hbird_hungarian_maximises_summed_iou_not_matched_pixels():
    # rows: ground truth, columns: predictions. Matching by pixels keeps the identity (24 + 3 = 27 > 18 + 7);
    # by IoU the swap wins (18/45 + 7/34 = 0.6059 > 24/49 + 3/28 = 0.5970).
    matrix = torch.tensor([[24, 18], [7, 3]])
    result = open_hbird_hungarian_scores(matrix, ["a", "b"])
    assert result["matching"] == {1: 0, 0: 1}
    assert result["per_class_iou"] == pytest.approx({"a": 18 / 45, "b": 7 / 34})
    assert result["mIoU"] == pytest.approx((18 / 45 + 7 / 34) / 2)


def test_open_hbird_hungarian_counts_absent_classes_as_zero():
    matrix = torch.tensor([[4, 0, 0], [0, 0, 0], [0, 0, 2]])
    assert scores(matrix)["mIoU"] == pytest.approx(1.0)  # plain: class 1 is left out
    result = open_hbird_hungarian_scores(matrix)
    assert result["per_class_iou"]["class_1"] == 0.0 and result["mIoU"] == pytest.approx(2 / 3)

def test_a_bank_of_another_target_kind_is_refused_in_one_line(tmp_path):
    import pytest

    from hummingbird import Segmenter
    from hummingbird.errors import BankError
    from hummingbird.memory.bank import MemoryBank
    from hummingbird.memory.targets import check_target_kind, target_kind_of

    assert target_kind_of({}) == "classes"  # banks written before kinds existed
    check_target_kind({"target_kind": "classes"}, "classes", "b")
    with pytest.raises(BankError, match=r"^b: a depth memory .* cannot answer a classes query"):
        check_target_kind({"target_kind": "depth"}, "classes", "b")
    bank = MemoryBank(torch.nn.functional.normalize(torch.randn(4, 8), dim=1), torch.ones(4, 1),
                      torch.zeros(4, 3, dtype=torch.int32), torch.zeros(1, 6, dtype=torch.int32),
                      {"target_kind": "depth", "backbone": "dino_vits16"})
    bank.save(tmp_path / "depth.safetensors")
    with pytest.raises(BankError, match="depth.safetensors: a depth memory"):
        Segmenter.load(tmp_path / "depth.safetensors")
