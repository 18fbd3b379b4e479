"""Sharded banks: same content as one file, torchrun (gloo, 2 processes) = 1 process, resume after a kill,
memory-mapped reading, IVF-PQ with exact re-ranking."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import write_folder_dataset

from hummingbird.cli.main import main
from hummingbird.memory.bank import MemoryBank
from hummingbird.memory.faiss_index import NeighbourIndex
from hummingbird.memory.rows import RowGather
from hummingbird.memory.shards import ShardedBank, mmap_tensors

BUILD = ["build-memory", "--dataset", "folder", "--split", "train", "--backbone", "dino_vits16", "--weights", "random",
         "--input-size", "64", "--memory-size", "60", "--augmentation-epochs", "2", "--batch-size", "3",
         "--num-workers", "0", "--no-progress"]


@pytest.fixture
def ds(tmp_path):
    return write_folder_dataset(tmp_path / "ds", n_train=10, n_val=5)


def _cli(*args, nproc=1, check=True):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if nproc == 1:
        cmd = [sys.executable, "-m", "hummingbird", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "hummingbird.cli.main", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_sharded_bank_matches_single_file_bank(ds, tmp_path):
    assert main([*BUILD, "--data-root", str(ds), "--out", str(tmp_path / "one.safetensors")]) == 0
    assert main([*BUILD, "--data-root", str(ds), "--out", str(tmp_path / "sharded"), "--shard-images", "4"]) == 0
    one = MemoryBank.load(tmp_path / "one.safetensors")
    sharded = ShardedBank(tmp_path / "sharded")
    assert len(sharded.shard_files) == 6 and len(sharded) == len(one) == 60  # 2 epochs x 3 shards; 3 per image
    merged = sharded.to_memory()
    torch.testing.assert_close(merged.features, one.features, atol=1e-4, rtol=0)  # other batch boundaries
    assert torch.equal(merged.labels, one.labels) and torch.equal(merged.views, one.views)
    assert torch.equal(merged.sources, one.sources)
    # memory-mapped rows equal the loaded ones
    gather = RowGather([mmap_tensors(p)["labels"] for p in sharded.shard_files])
    rows = torch.tensor([[0, 59], [17, 33]])
    assert torch.equal(gather[rows], one.labels[rows])
    assert isinstance(mmap_tensors(sharded.shard_files[0])["features"], np.memmap)


def test_torchrun_two_processes_equal_one_process(ds, tmp_path):
    common = [*BUILD, "--data-root", str(ds), "--shard-images", "3"]
    _cli(*common, "--out", str(tmp_path / "p1"))
    _cli(*common, "--out", str(tmp_path / "p2"), nproc=2)
    one, two = ShardedBank(tmp_path / "p1").to_memory(), ShardedBank(tmp_path / "p2").to_memory()
    assert torch.equal(one.features, two.features) and torch.equal(one.labels, two.labels)
    evaluate = ["evaluate", "--dataset", "folder", "--data-root", str(ds), "--split", "val", "--k", "5",
                "--weights", "random", "--batch-size", "2", "--num-workers", "0", "--no-progress"]
    _cli(*evaluate, "--bank", str(tmp_path / "p1"), "--out", str(tmp_path / "r1.json"))
    _cli(*evaluate, "--bank", str(tmp_path / "p2"), "--out", str(tmp_path / "r2.json"), nproc=2)
    r1, r2 = (json.loads((tmp_path / f"r{i}.json").read_text()) for i in (1, 2))
    assert r2["processes"] == 2 and r1["processes"] == 1
    assert r1["mIoU"] == r2["mIoU"] and r1["confusion_matrix"] == r2["confusion_matrix"]
    assert r1["confusion_matrix"] and sum(map(sum, r1["confusion_matrix"])) > 0


def test_killed_build_resumes_to_the_same_bank(tmp_path):
    ds = write_folder_dataset(tmp_path / "ds", n_train=24, n_val=1, size=128)
    common = ["-m", "hummingbird", *BUILD, "--data-root", str(ds), "--input-size", "128", "--shard-images", "4"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert subprocess.run([sys.executable, *common, "--out", str(full)], capture_output=True).returncode == 0
    proc = subprocess.Popen([sys.executable, *common, "--out", str(resumed)], stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list(resumed.glob("shard_*.safetensors")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    done = sorted(p.name for p in resumed.glob("shard_*.safetensors"))
    assert 1 <= len(done) < 12 and not (resumed / "manifest.json").exists()
    assert not list(resumed.glob(".*.tmp"))  # no partial shard left
    stamps = {n: (resumed / n).stat().st_mtime_ns for n in done}
    assert subprocess.run([sys.executable, *common, "--out", str(resumed)], capture_output=True).returncode == 0
    assert all((resumed / n).stat().st_mtime_ns == t for n, t in stamps.items())  # finished shards kept
    a, b = ShardedBank(full).to_memory(), ShardedBank(resumed).to_memory()
    assert torch.equal(a.features, b.features) and torch.equal(a.labels, b.labels) and torch.equal(a.views, b.views)


def test_ivf_pq_with_exact_reranking_recovers_exact_neighbours():
    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(30, 32, generator=g), dim=1)
    data = torch.nn.functional.normalize(centres[torch.randint(0, 30, (6000,), generator=g)]
                                         + 0.4 * torch.randn(6000, 32, generator=g) / 6, dim=1)
    memory, queries = data[:5500], data[5500:]
    _, exact = NeighbourIndex(32).add(memory).search(queries, 10)
    index = NeighbourIndex(32, "IVF16,PQ8x4", nprobe=8).add(memory)

    def recall(ids):
        return np.mean([len(set(a.tolist()) & set(e.tolist())) / 10 for a, e in zip(ids, exact)])

    r_plain = recall(index.search(queries, 10)[1])
    index.refine = 20
    index.keep_raw(RowGather([memory[:2000].numpy(), memory[2000:].numpy()]))  # re-rank from "shards"
    sims, ids = index.search(queries, 10)
    assert recall(ids) >= 0.95 and recall(ids) > r_plain + 0.1
    assert (sims[:, :-1] >= sims[:, 1:]).all()  # exact similarities, sorted
    torch.testing.assert_close(sims[:, 0], (queries * memory[ids[:, 0]]).sum(1))
