"""Official file sets shipped in data/filesets, named without paths."""

import pytest
from conftest import write_voc

from hummingbird.datasets.base import read_id_list
from hummingbird.datasets.filesets import SEEDS, expand_fileset, fileset_root, is_named, resolve_fileset
from hummingbird.datasets.registry import load_dataset
from hummingbird.errors import DatasetError


def test_names_resolve_to_the_shipped_official_lists():
    path = resolve_fileset("voc:1/128:42")
    assert path == fileset_root() / "voc" / "1_div_128" / "trainaug_128_42.txt"
    ids = read_id_list(path)
    full = read_id_list(resolve_fileset("voc:full"))
    assert len(full) == 10582 and len(set(ids)) == len(ids) and set(ids) <= set(full)
    assert len(ids) == pytest.approx(len(full) / 128, rel=0.05)  # the official lists are about 1/N
    assert len(read_id_list(resolve_fileset("voc:val"))) == 1449
    ade = read_id_list(resolve_fileset("ade20k:1/8:4019"))
    assert len(ade) == pytest.approx(20210 / 8, rel=0.05) and all(i.startswith("ADE_train_") for i in ade)
    # the five seeds are five different subsets
    assert len({tuple(read_id_list(resolve_fileset(f"voc:1/64:{s}"))) for s in SEEDS}) == 5


def test_a_fraction_without_seed_stands_for_all_five():
    assert expand_fileset("voc:1/128") == [f"voc:1/128:{s}" for s in SEEDS]
    assert expand_fileset("voc:1/128:400") == ["voc:1/128:400"]
    assert expand_fileset("my/ids.txt") == ["my/ids.txt"]


@pytest.mark.parametrize("spec, message", [
    ("voc:1/16:42", "fraction 1/16 is not shipped; use 1/8, 1/64 or 1/128"),
    ("voc:1/128:7", "seed 7 is not shipped; use one of 42, 400, 783, 1293, 4019"),
    ("voc:1/128", "names 5 file sets .* add one, e.g. voc:1/128:42"),  # (no colon after the name here)
    ("ade20k:full", "only voc:full and voc:val are shipped"),
])
def test_bad_names_say_what_is_shipped(spec, message):
    with pytest.raises(DatasetError, match=f"fileset='{spec}':? {message}"):
        resolve_fileset(spec)


def test_paths_and_missing_copies(tmp_path, monkeypatch):
    ids = tmp_path / "voc:1"  # an existing file is a path, whatever its name
    ids.write_text("a\n")
    assert not is_named(str(ids)) and resolve_fileset(str(ids)) == ids
    monkeypatch.setenv("HUMMINGBIRD_FILESETS", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="voc:1/8:42.: .*nowhere.* not found .*HUMMINGBIRD_FILESETS"):
        resolve_fileset("voc:1/8:42")


def test_datasets_take_names_and_report_ids_missing_from_the_split(tmp_path):
    root = write_voc(tmp_path)
    with pytest.raises(DatasetError, match=r"voc:1/128:42: 80 ids are not in split 'trainaug'"):
        load_dataset("voc", root, "trainaug", fileset="voc:1/128:42")
