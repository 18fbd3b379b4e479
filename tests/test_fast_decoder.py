"""The fast query path against the plain one it replaces: torch exact and clustered search against
faiss / brute force, chunked upsampling against per-image upsampling, the fused confusion update
against a plain bincount, and the automatic search choice."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

import hummingbird.memory.search as search
from hummingbird.evaluation.metrics import ConfusionMatrix
from hummingbird.memory.bank import MemoryBank
from hummingbird.memory.decoder import HummingbirdDecoder, soft_labels, upsample_labels
from hummingbird.memory.faiss_index import NeighbourIndex
from hummingbird.memory.search import ClusteredSearch, ExactSearch, TopK, auto_spec
from hummingbird.pipeline import make_decoder
from hummingbird.runtime.profiling import StageTimer


def _clustered_data(n, d=32, centres=40, queries=300, seed=0):
    """Unit vectors drawn around ``centres`` directions (patch features are clustered like this)."""
    g = torch.Generator().manual_seed(seed)
    means = F.normalize(torch.randn(centres, d, generator=g), dim=1)
    data = F.normalize(means[torch.randint(0, centres, (n + queries,), generator=g)]
                       + 0.25 * torch.randn(n + queries, d, generator=g), dim=1)
    return data[:n].contiguous(), data[n:].contiguous()


def _brute_force(memory, queries, k):
    top = (queries @ memory.T).topk(k, dim=1)
    return top.values, top.indices


def _assert_exact_neighbours(sims, ids, memory, queries):
    """``ids`` are an exact top-k of every query, most similar first: the brute-force similarities,
    distinct rows, each row's own similarity (rows of equal similarity may come in either order)."""
    expected_sims, expected_ids = _brute_force(memory, queries, ids.shape[1])
    torch.testing.assert_close(sims, expected_sims, atol=1e-5, rtol=0)
    torch.testing.assert_close((queries[:, None] * memory[ids]).sum(-1), sims, atol=1e-5, rtol=0)
    assert all(len(set(row)) == len(row) for row in ids.tolist())
    assert (ids == expected_ids).float().mean() > 0.99  # the same rows, but for ties


@pytest.fixture(params=["heap", "topk"])
def selection(request, monkeypatch):
    """Run each search test with both top-k selections: faiss heaps (the CPU's) and torch.topk merges
    (every other device's)."""
    if request.param == "topk":
        monkeypatch.setattr(search, "_use_heaps", lambda device: False)
    return request.param


def test_topk_keeps_the_largest_scores_of_every_block(selection):
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(50, 300, generator=g)
    top = TopK(50, 7, torch.device("cpu"))
    top.add(scores[:, :100], torch.arange(100))
    subset = torch.tensor([3, 0, 49, 10])  # a block for a few queries only (as a partition sees them)
    top.add(scores[subset, 100:250], torch.arange(100, 250), subset)
    top.add(scores[:, 250:], torch.arange(250, 300))
    sims, ids = top.result()
    seen = scores.clone()
    mask = torch.ones(50, dtype=torch.bool)
    mask[subset] = False
    seen[mask, 100:250] = -torch.inf
    expected = seen.topk(7, dim=1)
    torch.testing.assert_close(sims, expected.values)
    assert torch.equal(ids, expected.indices)


def test_topk_pads_missing_neighbours(selection):
    top = TopK(2, 4, torch.device("cpu"))
    top.add(torch.tensor([[0.5, 0.9], [0.1, 0.2]]), torch.tensor([10, 11]))
    sims, ids = top.result()
    assert ids.tolist() == [[11, 10, -1, -1], [11, 10, -1, -1]]
    assert sims[0, :2].tolist() == pytest.approx([0.9, 0.5]) and torch.isinf(sims[:, 2:]).all()


@pytest.mark.parametrize("query_rows", [4096, 37])
def test_exact_search_equals_brute_force_and_faiss(selection, query_rows):
    memory, queries = _clustered_data(3000)
    sims, ids = ExactSearch(memory, block_rows=700, query_rows=query_rows).search(queries, 12)
    _assert_exact_neighbours(sims, ids, memory, queries)
    faiss_sims, faiss_ids = NeighbourIndex(32).add(memory).search(queries, 12)
    assert torch.equal(ids, faiss_ids)


def test_exact_search_over_chunks_numbers_rows_across_chunks():
    memory, queries = _clustered_data(2000)
    chunks = [memory[:600].numpy(), memory[600:1500].half().numpy(), memory[1500:]]  # shards, one in fp16
    stored = torch.cat([memory[:600], memory[600:1500].half().float(), memory[1500:]])
    sims, ids = ExactSearch(chunks, block_rows=500).search(queries, 9)
    _assert_exact_neighbours(sims, ids, stored, queries)


def test_exact_search_streams_a_memory_that_does_not_fit(monkeypatch):
    memory, queries = _clustered_data(2000)
    monkeypatch.setattr(search, "fits_on_device", lambda num_bytes, device: False)
    streamed = ExactSearch(memory, block_rows=300, score_dtype=torch.float16)
    assert not streamed.resident and streamed.scoring is streamed.blocks  # no half copies kept
    sims, ids = streamed.search(queries, 8)
    _assert_exact_neighbours(sims, ids, memory, queries)


def test_half_precision_scoring_with_exact_reranking_is_exact(selection):
    memory, queries = _clustered_data(4000, centres=5)
    # near-duplicates: neighbours 1e-4 apart, far below half precision's resolution (~1e-3)
    noise = 1e-4 * torch.randn(500, 32, generator=torch.Generator().manual_seed(1))
    memory = F.normalize(torch.cat([memory, memory[:500] + noise]), dim=1)
    sims, ids = ExactSearch(memory, score_dtype=torch.float16, block_rows=1000).search(queries, 15)
    _assert_exact_neighbours(sims, ids, memory, queries)  # float32 similarities, exact rows


def test_half_precision_doubtful_queries_are_searched_again(monkeypatch):
    memory, queries = _clustered_data(1000)
    half = ExactSearch(memory, score_dtype=torch.float16)
    again = []
    original = half._search_fp32
    monkeypatch.setattr(half, "_search_fp32", lambda q, k: again.append(len(q)) or original(q, k))
    monkeypatch.setattr(search, "HALF_PRECISION_SLACK", 10.0)  # nothing can be certified
    sims, ids = half.search(queries, 5)
    assert again == [len(queries)]
    _assert_exact_neighbours(sims, ids, memory, queries)


def test_clustered_search_visiting_every_partition_is_exact(selection):
    memory, queries = _clustered_data(3000)
    clustered = ClusteredSearch(memory, nlist=16, nprobe=16)
    sims, ids = clustered.search(queries, 10)
    _assert_exact_neighbours(sims, ids, memory, queries)


def test_clustered_search_keeps_half_precision_features(selection):
    memory, queries = _clustered_data(2000)
    half = memory.half()
    clustered = ClusteredSearch(half, nlist=8, nprobe=8)
    assert clustered.features.dtype == torch.float16  # no float32 copy of an fp16 bank
    sims, ids = clustered.search(queries, 6)
    _assert_exact_neighbours(sims, ids, half.float(), queries)


def test_clustered_search_recall_and_exact_similarities(selection):
    memory, queries = _clustered_data(6000)
    clustered = ClusteredSearch(memory, nlist=64, nprobe=8)
    sims, ids = clustered.search(queries, 10)
    _, expected = _brute_force(memory, queries, 10)
    recall = np.mean([len(set(a.tolist()) & set(e.tolist())) / 10 for a, e in zip(ids, expected)])
    assert 0.9 < recall  # an eighth of the partitions finds most neighbours of clustered data
    torch.testing.assert_close(sims, (queries[:, None] * memory[ids]).sum(-1), atol=1e-5, rtol=0)  # exact
    assert (sims[:, :-1] >= sims[:, 1:]).all() and len(ids.unique()) > 100


def test_clustered_search_falls_back_to_exact_when_partitions_are_too_small():
    memory, queries = _clustered_data(200, queries=40)
    clustered = ClusteredSearch(memory, nlist=50, nprobe=1)  # ~4 rows per partition, k = 20
    sims, ids = clustered.search(queries, 20)
    _assert_exact_neighbours(sims, ids, memory, queries)


def test_clustered_search_defaults_follow_memory_size():
    assert search.default_nlist(102_400) == 1024 and search.default_nprobe(1024) == 48
    assert search.default_nlist(10_240_000) == 8192 and search.default_nprobe(16) == 8
    memory, _ = _clustered_data(5000)
    clustered = ClusteredSearch(memory)
    assert clustered.nlist == search.default_nlist(5000) == 256 and clustered.nprobe == 12


def test_auto_choice_by_memory_size_and_override(monkeypatch):
    assert auto_spec(search.CPU_CLUSTERED_FROM - 1, "cpu") == "Flat"  # faiss exact on CPUs
    assert auto_spec(search.CPU_CLUSTERED_FROM, "cpu") == "clustered"
    assert auto_spec(search.CPU_CLUSTERED_FROM, "cuda") == "exact"  # half-precision exact on GPUs
    assert auto_spec(search.CUDA_CLUSTERED_FROM, "cuda") == "clustered"
    monkeypatch.setattr(search, "fits_on_device", lambda num_bytes, device: num_bytes < 10**9)
    assert auto_spec(search.CUDA_CLUSTERED_FROM, "cuda", 10**8) == "clustered"
    assert auto_spec(search.CUDA_CLUSTERED_FROM, "cuda", 10**10) == "exact"  # streamed from host memory
    memory, _ = _clustered_data(3000)
    bank = MemoryBank(memory, torch.softmax(torch.randn(3000, 4), 1), torch.zeros(3000, 3, dtype=torch.int32),
                      torch.zeros(1, 6, dtype=torch.int32), {})
    small = make_decoder(bank, k=5).index
    assert isinstance(small, NeighbourIndex) and small.spec == "Flat"
    monkeypatch.setattr(search, "CPU_CLUSTERED_FROM", 2000)
    decoder = make_decoder(bank, k=5)
    assert isinstance(decoder.index, ClusteredSearch) and decoder.index.nlist == search.default_nlist(3000)
    assert isinstance(make_decoder(bank, k=5, index_spec="exact").index, ExactSearch)  # --index overrides
    ivf = make_decoder(bank, k=5, index_spec="IVF8,Flat", nprobe=2).index  # faiss strings as before
    assert isinstance(ivf, NeighbourIndex) and ivf.spec == "IVF8,Flat" and ivf.nprobe == 2
    assert make_decoder(bank, k=5, index_spec="clustered", nprobe=3).index.nprobe == 3


def _old_upsample(distributions, size):
    """The upsampling the decoder used before: one image at a time, from the (h, w, C) layout."""
    maps = []
    for dist in distributions:
        grid = rearrange(dist, "h w c -> 1 c h w")
        maps.append(F.interpolate(grid, size=size, mode="bilinear", align_corners=False).argmax(1)[0])
    return torch.stack(maps)


@pytest.mark.parametrize("size", [(64, 64), (50, 75), (13, 9)])
def test_chunked_upsampling_equals_per_image_upsampling(size):
    g = torch.Generator().manual_seed(1)
    dist = torch.softmax(3 * torch.randn(5, 4, 6, 21, generator=g), dim=-1)
    expected = _old_upsample(dist, size)
    assert torch.equal(upsample_labels(dist, size), expected)
    plane = size[0] * size[1] * 4
    for budget in (plane * 21 * 2, plane * 21, plane * 5, plane):  # 2 images, 1 image, 5 and 1 channel(s)
        assert torch.equal(upsample_labels(dist, size, max_bytes=budget), expected)


def test_upsampling_ties_go_to_the_first_class_in_every_chunking():
    dist = torch.full((1, 2, 2, 6), 1 / 6)
    dist[..., 4] = 0.3  # classes 2 and 4 tie above the rest
    dist[..., 2] = 0.3
    for budget in (1 << 20, 8 * 8 * 4, 8 * 8 * 4 * 3):
        assert (upsample_labels(dist, (8, 8), max_bytes=budget) == 2).all()


def test_upsampling_timer_charges_upsample_and_argmax():
    timer = StageTimer()
    upsample_labels(torch.rand(2, 3, 3, 4), (30, 30), timer)
    assert set(timer.seconds) == {"upsample", "argmax"} and all(v >= 0 for v in timer.seconds.values())


def test_decoder_predictions_equal_the_old_exact_path(selection):
    memory, queries = _clustered_data(2500, queries=2 * 6 * 5)
    labels = torch.softmax(2 * torch.randn(2500, 7), dim=1)
    features = queries.view(2, 6, 5, 32)
    new = HummingbirdDecoder(ExactSearch(memory), labels, k=10)
    sims, ids = NeighbourIndex(32).add(memory).search(queries, 10)
    old_dist = soft_labels(sims, labels[ids], 0.02).view(2, 6, 5, 7)
    assert torch.equal(new.predict(features, (48, 40)), _old_upsample(old_dist, (48, 40)))
    rows_sims, rows = new.neighbours(features)
    assert rows.shape == (2, 6, 5, 10) and torch.equal(rows.reshape(-1, 10), ids)
    torch.testing.assert_close(new.distributions_from(rows_sims, rows), old_dist)


def test_fused_confusion_update_equals_plain_bincount():
    g = torch.Generator().manual_seed(2)
    c = 6
    cm = ConfusionMatrix(c)
    expected = torch.zeros(c, c, dtype=torch.int64)
    for _ in range(4):
        targets = torch.randint(0, c, (3, 17, 11), generator=g)
        targets[torch.rand(targets.shape, generator=g) < 0.2] = 255
        predictions = torch.randint(-2, c + 3, (3, 17, 11), generator=g)  # out-of-range predictions clamp
        cm.update(predictions, targets)
        keep = targets != 255
        t, p = targets[keep], predictions[keep].clamp(0, c - 1)
        expected += torch.bincount(t * c + p, minlength=c * c).view(c, c)
    assert torch.equal(cm.matrix, expected)
    cm.matrix += 1  # in-place changes (an all-reduce) are kept
    assert torch.equal(cm.matrix, expected + 1)


def test_confusion_update_refuses_targets_out_of_range():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"target values outside \[0, 3\) and not 255"):
        cm.update(torch.zeros(1, 4, dtype=torch.int64), torch.tensor([[0, 1, 3, 255]]))
    assert cm.matrix.sum() == 0  # the refused batch was not counted
    with pytest.raises(ValueError, match="prediction shape"):
        cm.update(torch.zeros(1, 3), torch.zeros(1, 4))


def test_stage_timer_accumulates_per_stage():
    timer = StageTimer()
    for _ in range(3):
        with timer("search"):
            torch.ones(10).sum()
    with timer("backbone"):
        pass
    per_image = timer.per_image(3)
    assert list(per_image) == ["backbone", "search"]  # data-flow order
    assert timer.total() == pytest.approx(sum(timer.seconds.values()))


@pytest.mark.parametrize("sharpness", [1.0, 4.0, 12.0, "ties"])
def test_upsampling_only_contending_classes_changes_no_label(sharpness):
    g = torch.Generator().manual_seed(7)
    for trial in range(10):
        h, w, c = (int(v) for v in torch.randint(1, 9, (3,), generator=g))
        if sharpness == "ties":  # few distinct values: exact ties between classes everywhere
            dist = torch.randint(0, 3, (3, h, w, 4 * c), generator=g).float() / 4
        else:
            dist = torch.softmax(sharpness * torch.randn(3, h, w, 4 * c, generator=g), dim=-1)
        size = tuple(int(v) for v in torch.randint(1, 40, (2,), generator=g))
        assert torch.equal(upsample_labels(dist, size), _old_upsample(dist, size)), (trial, h, w, size)


def test_contending_classes_prunes_classes_that_never_win():
    dist = torch.zeros(2, 3, 3, 5)
    dist[0, ..., 1] = 0.9  # image 0: class 1 everywhere, class 3 a little on one patch
    dist[0, 0, 0, 3] = 0.1
    dist[1, :, :2, 0], dist[1, :, 2:, 4] = 1.0, 1.0  # image 1: classes 0 and 4 side by side
    contenders = search_free_contenders(dist)
    assert contenders.tolist() == [[False, True, False, False, False], [True, False, False, False, True]]
    labels = upsample_labels(dist, (12, 12))
    assert (labels[0] == 1).all() and set(labels[1].unique().tolist()) == {0, 4}
    assert torch.equal(labels, _old_upsample(dist, (12, 12)))


def search_free_contenders(dist):
    from hummingbird.memory.decoder import contending_classes

    return contending_classes(dist)


@pytest.mark.parametrize("searcher", ["clustered", "exact"])
def test_searches_keep_torchs_threads_for_their_matrix_products(monkeypatch, searcher):
    """faiss and torch share one OpenMP runtime: the one-thread setting for faiss's result heaps must not
    be held while torch multiplies (it was, and the CPU searches ran on one core)."""
    memory, queries = _clustered_data(3000)
    index = ClusteredSearch(memory, nlist=16, nprobe=4) if searcher == "clustered" else ExactSearch(memory)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    seen, original = [], TopK.add
    monkeypatch.setattr(TopK, "add", lambda self, *a, **kw: seen.append(torch.get_num_threads()) or original(self, *a, **kw))
    try:
        index.search(queries, 5)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
    assert seen and set(seen) == {2}  # the threads the scores were multiplied with, block after block
    assert after == 2
