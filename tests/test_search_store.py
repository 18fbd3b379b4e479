"""Stored search indexes are tied to their bank's content and checked before use: a sharded bank rebuilt in
place from other images gets a new index; a damaged index file is named and rebuilt, never used."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from hummingbird import Segmenter
from hummingbird.cli.main import main
from hummingbird.datasets.synthetic import write_block_dataset
from hummingbird.errors import HummingbirdWarning
from hummingbird.memory.search import ClusteredSearch
from hummingbird.memory.search_store import index_folder

BUILD = ["build-memory", "--dataset", "folder", "--split", "train", "--backbone", "dino_vits16", "--weights", "random",
         "--input-size", "64", "--no-augment", "--shard-images", "4", "--num-workers", "0", "--no-progress"]
QUERY = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def _neighbour_rows(segmenter: Segmenter) -> np.ndarray:
    return segmenter.query(QUERY, k=8).rows.numpy()


def _fresh_rows(bank, tmp_path) -> np.ndarray:
    """The neighbours with an index trained now, away from any stored one."""
    copy = tmp_path / "fresh" / bank.name
    shutil.copytree(bank, copy)
    return _neighbour_rows(Segmenter.load(copy, index="clustered"))


def _build(root, out) -> None:
    assert main([*BUILD, "--data-root", str(root), "--out", str(out)]) == 0


def test_a_sharded_bank_rebuilt_in_place_from_other_images_is_not_searched_with_its_old_index(tmp_path, capsys):
    root, bank = tmp_path / "ds", tmp_path / "bank"
    write_block_dataset(root, n_train=8, n_val=2, seed=0)
    _build(root, bank)
    Segmenter.load(bank, index="clustered").decoder()  # trains and stores the clustered index
    stored = index_folder(bank) / "clustered-seed0.safetensors"
    assert stored.is_file()
    manifest = (bank / "manifest.json").read_bytes()
    # same ids, same folder, other pictures: the manifest comes out byte for byte the same
    shutil.rmtree(root)
    write_block_dataset(root, n_train=8, n_val=2, seed=1)
    shutil.rmtree(bank)
    _build(root, bank)
    assert (bank / "manifest.json").read_bytes() == manifest
    capsys.readouterr()
    rebuilt = Segmenter.load(bank, index="clustered", progress=True)
    rows = _neighbour_rows(rebuilt)
    assert f"search index {stored} is stale (built for another version of the bank)" in capsys.readouterr().err
    assert np.array_equal(rows, _fresh_rows(bank, tmp_path))  # every patch: the fresh index's 8 neighbours


def test_a_stale_index_is_rebuilt_quietly_unless_progress_is_asked(tmp_path, capsys):
    root, bank = tmp_path / "ds", tmp_path / "bank"
    write_block_dataset(root, n_train=8, n_val=2, seed=0)
    _build(root, bank)
    Segmenter.load(bank, index="clustered").decoder()
    shutil.rmtree(root)
    write_block_dataset(root, n_train=8, n_val=2, seed=1)
    shutil.rmtree(bank)
    _build(root, bank)
    capsys.readouterr()
    Segmenter.load(bank, index="clustered").decoder()
    assert capsys.readouterr().err == ""  # rebuilt, but library calls print nothing unless asked
    Segmenter.load(bank, index="clustered", progress=True).decoder()  # the rebuilt index was stored
    assert "search" not in capsys.readouterr().err


@pytest.fixture
def one_file_bank(tmp_path):
    """A bank file with its clustered index stored, and the neighbours that index gives."""
    root = write_block_dataset(tmp_path / "ds", n_train=8, n_val=2, seed=0)
    images = [np.array(Image.open(root / "images" / f"img{i:03d}.png")) for i in range(8)]
    masks = [np.array(Image.open(root / "masks" / f"img{i:03d}.png")) for i in range(8)]
    built = Segmenter.from_examples(images, masks, backbone="dino_vits16", weights="random", input_size=64,
                                    index="clustered")
    path = built.save(tmp_path / "bank.safetensors")
    stored = index_folder(path) / "clustered-seed0.safetensors"
    assert stored.is_file()
    return path, stored, _neighbour_rows(Segmenter.load(path, index="clustered"))


def _damage(stored, how: str) -> None:
    data = bytearray(stored.read_bytes())
    if how == "bit in a partition number":  # the last tensor bytes: the assignment (int32 per row)
        data[-3] ^= 0x40
    elif how == "zeroed 4 KiB block":
        data[1024:1024 + 4096] = bytes(4096)
    elif how == "truncated":
        data = data[: len(data) // 2]
    stored.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["bit in a partition number", "zeroed 4 KiB block", "truncated"])
def test_a_damaged_index_is_named_and_rebuilt(one_file_bank, how):
    path, stored, rows = one_file_bank
    _damage(stored, how)
    with pytest.warns(HummingbirdWarning, match=f"search index {stored} is (damaged|unreadable).*rebuilding it"):
        segmenter = Segmenter.load(path, index="clustered")
        assert np.array_equal(_neighbour_rows(segmenter), rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilt and stored again: no more warning
        assert np.array_equal(_neighbour_rows(Segmenter.load(path, index="clustered")), rows)


def test_partitions_that_do_not_fit_the_bank_are_refused_even_with_a_matching_checksum(one_file_bank):
    """An index written with a right checksum but partition numbers outside its centroids (a bug or a hand
    edit) is refused by the shape checks, not met by torch's bincount error."""
    from hummingbird.files.tensorfile import read_tensor_file, write_tensor_file
    from hummingbird.memory.bank import tensors_checksum
    from hummingbird.memory.search_store import KEY

    path, stored, rows = one_file_bank
    tensors, meta = read_tensor_file(stored, KEY, "search index")
    tensors["assignment"][0] = -5
    write_tensor_file(stored, tensors, KEY, dict(meta, index_checksum=tensors_checksum(tensors)))
    with pytest.warns(HummingbirdWarning, match="damaged .partition numbers outside"):
        index = Segmenter.load(path, index="clustered").decoder().index
    assert isinstance(index, ClusteredSearch) and int(index.assignment.min()) >= 0


def test_an_index_written_before_checksums_is_rebuilt(one_file_bank, capsys):
    from hummingbird.files.tensorfile import read_tensor_file, write_tensor_file
    from hummingbird.memory.search_store import KEY

    path, stored, rows = one_file_bank
    tensors, meta = read_tensor_file(stored, KEY, "search index")
    meta.pop("index_checksum")
    write_tensor_file(stored, tensors, KEY, dict(meta, format_version=1))
    capsys.readouterr()
    segmenter = Segmenter.load(path, index="clustered", progress=True)
    assert np.array_equal(_neighbour_rows(segmenter), rows)
    assert f"search index {stored} is stale (written by an earlier version" in capsys.readouterr().err


def test_training_a_sharded_banks_index_shows_no_numpy_warning(tmp_path):
    """In a fresh process (torch shows that warning once per process)."""
    root = write_block_dataset(tmp_path / "ds", n_train=8, n_val=2, seed=0)
    _build(root, tmp_path / "bank")
    code = ("import warnings; warnings.simplefilter('always'); from hummingbird import Segmenter; "
            f"print(len(Segmenter.load({str(tmp_path / 'bank')!r}, index='clustered').decoder().index))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split() == [str(8 * 16)], done.stderr
    assert done.stderr == ""
