"""prepare-data against a loopback HTTP server serving tiny archives in the official layouts: download,
resume, checksum, conversion (SBD .mat → trainaug, COCO-Stuff pixel maps), check; failures are one line."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import tiny_archives as tiny
from PIL import Image
from tiny_archives import LoopbackServer, official_paths, write_files

from hummingbird.cli.main import main


@pytest.fixture(scope="module")
def voc_archives() -> dict[str, bytes]:
    return {"VOCtrainval_11-May-2012.tar": tiny.voc_tar(), "benchmark.tgz": tiny.sbd_tgz()}


def _checksums(tmp_path, archives: dict[str, bytes]) -> str:
    path = tmp_path / "checksums.md5"
    path.write_text(tiny.md5sums(archives))
    return str(path)


def _leftovers(root) -> list[str]:
    """Anything half-written: staging folders and partial downloads."""
    return sorted(p.name for p in root.rglob("*") if p.name.startswith(".staging-") or p.suffix == ".part")


def test_voc_download_resumes_verifies_converts_and_checks(tmp_path, voc_archives, capsys):
    root = tmp_path / "data"
    with LoopbackServer(official_paths(voc_archives), drop_once={"/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"}) \
            as server:
        code = main(["prepare-data", "voc", "--root", str(root), "--mirror", server.url, "--no-progress",
                     "--checksums", _checksums(tmp_path, voc_archives), "--out", str(tmp_path / "prep.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    # the dropped transfer was resumed with a Range request from where it stopped
    tar_requests = [r for p, r in server.requests if p.endswith(".tar")]
    assert tar_requests[0] is None and tar_requests[1] == f"bytes={len(voc_archives['VOCtrainval_11-May-2012.tar']) // 2}-"
    voc = root / "VOCdevkit" / "VOC2012"
    assert (voc / "ImageSets/SegmentationAug/trainaug.txt").read_text().split() == tiny.TRAINAUG
    # SBD masks converted from GTcls.Segmentation; VOC's own masks (with 255 boundaries) win where both exist
    sbd_only = np.array(Image.open(voc / "SegmentationClassAug" / "2008_000003.png"))
    assert sbd_only[0, 0] == tiny.SBD_CLASS and sbd_only[-1, 0] == 0 and 255 not in sbd_only
    both = np.array(Image.open(voc / "SegmentationClassAug" / "2007_000032.png"))
    assert both[0, 0] == tiny.VOC_CLASS and both[tiny.H // 2, 0] == 255
    assert (voc / "JPEGImages" / "2008_000003.jpg").is_file()  # an SBD image VOC lacked
    assert "0 problems" in out and "trainaug" in out and f"--data-root {root / 'VOCdevkit'}" in out
    assert sorted(p.name for p in (root / "downloads").iterdir()) == sorted(voc_archives)
    assert _leftovers(root) == [] and not (root / "sbd").exists()
    report = json.loads((tmp_path / "prep.json").read_text())
    assert report["ok"] and sorted(report["archives"]) == sorted(voc_archives)
    assert [c["split"] for c in report["checks"]] == ["trainaug", "val"] and report["checks"][0]["images"] == 4
    # a second run sees the stamp, downloads nothing and checks again
    assert main(["prepare-data", "voc", "--root", str(root), "--mirror", "http://127.0.0.1:9", "--no-progress"]) == 0
    assert "already prepared" in capsys.readouterr().out


def test_ade20k_from_archive_and_check(tmp_path, capsys):
    archives = write_files(tmp_path / "given", {"ADEChallengeData2016.zip": tiny.ade20k_zip()})
    root = tmp_path / "data"
    code = main(["prepare-data", "ade20k", "--root", str(root), "--from-archive", str(archives / "ADEChallengeData2016.zip"),
                 "--checksums", _checksums(tmp_path, {"ADEChallengeData2016.zip": tiny.ade20k_zip()}), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert sorted(p.name for p in (root / "ADEChallengeData2016/annotations/validation").iterdir()) == \
        ["ADE_val_00000001.png", "ADE_val_00000002.png"]
    assert not (root / "downloads").exists() and _leftovers(root) == []
    assert "[validation]: 2 images, 0 problems" in out


def test_the_official_checksum_refuses_another_file(tmp_path, capsys):
    """Without --checksums the official checksum applies: the tiny archive is refused, by name."""
    archive = write_files(tmp_path / "given", {"ADEChallengeData2016.zip": tiny.ade20k_zip()})
    code = main(["prepare-data", "ade20k", "--root", str(tmp_path / "data"), "--from-archive", str(archive),
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "ADEChallengeData2016.zip" in err and "219e1696abb36c8ba3a3afe7fb2f4b4606a897c7" in err
    assert (archive / "ADEChallengeData2016.zip").is_file()  # the user's own file is kept
    assert not (tmp_path / "data" / "ADEChallengeData2016").exists()


def test_corrupted_download_is_refused_by_name_and_deleted(tmp_path, voc_archives, capsys):
    root = tmp_path / "data"
    damaged = dict(voc_archives, **{"benchmark.tgz": voc_archives["benchmark.tgz"][:-10] + b"0123456789"})
    with LoopbackServer(official_paths(damaged)) as server:
        code = main(["prepare-data", "voc", "--root", str(root), "--mirror", server.url, "--no-progress",
                     "--checksums", _checksums(tmp_path, voc_archives)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "benchmark.tgz is corrupted" in err and server.url in err
    assert not (root / "VOCdevkit").exists() and _leftovers(root) == []
    assert not (root / "downloads" / "benchmark.tgz").exists()


def test_404_is_one_line_naming_archive_url_and_place(tmp_path, voc_archives, capsys):
    root = tmp_path / "data"
    with LoopbackServer({}) as server:
        code = main(["prepare-data", "voc", "--root", str(root), "--mirror", server.url, "--no-progress",
                     "--checksums", _checksums(tmp_path, voc_archives)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "HTTP 404" in err and f"{server.url}/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar" in err
    assert str(root / "downloads" / "VOCtrainval_11-May-2012.tar") in err
    assert not (root / "VOCdevkit").exists() and _leftovers(root) == []


def test_connection_closed_mid_stream_is_one_line_and_the_next_run_resumes(tmp_path, voc_archives, capsys):
    root = tmp_path / "data"
    tar_path = "/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
    checksums = _checksums(tmp_path, voc_archives)
    with LoopbackServer(official_paths(voc_archives), drop_once={tar_path}, drop_always={tar_path}) as server:
        code = main(["prepare-data", "voc", "--root", str(root), "--mirror", server.url, "--no-progress",
                     "--checksums", checksums])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "run again to resume" in err
        part = root / "downloads" / "VOCtrainval_11-May-2012.tar.part"
        half = len(voc_archives["VOCtrainval_11-May-2012.tar"]) // 2
        assert part.stat().st_size == half and not (root / "VOCdevkit").exists()
        server.drop_always.clear()
        assert main(["prepare-data", "voc", "--root", str(root), "--mirror", server.url, "--no-progress",
                     "--checksums", checksums]) == 0
    assert (server.requests[-2] if server.requests[-1][0].endswith(".tgz") else server.requests[-1]) == \
        (tar_path, f"bytes={half}-")
    assert _leftovers(root) == []


def test_host_not_answering_is_one_line_within_5_s(tmp_path, capsys):
    started = time.perf_counter()
    code = main(["prepare-data", "voc", "--root", str(tmp_path / "data"), "--mirror", "http://127.0.0.1:9",
                 "--no-progress"])
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err.strip()
    assert code == 2 and elapsed < 5 and len(err.splitlines()) == 1
    assert "VOCtrainval_11-May-2012.tar" in err and "http://127.0.0.1:9/pascal/VOC/voc2012/" in err
    assert "--from-archive" in err and str(tmp_path / "data" / "downloads") in err


def test_coco_stuff_pixel_maps_become_the_loaders_stuff_classes(tmp_path, capsys):
    archives = tiny.coco_archives()
    root = tmp_path / "data"
    with LoopbackServer(official_paths(archives)) as server:
        code = main(["prepare-data", "coco_stuff", "--root", str(root), "--mirror", server.url, "--no-progress",
                     "--checksums", _checksums(tmp_path, archives)])
    out = capsys.readouterr().out
    assert code == 0, out
    mask = np.array(Image.open(root / "coco/hummingbird_masks/stuff_val2017/139.png"))
    # rows: 0..5 banner (textile = class 0), 6..11 grass (plant = class 1), 12..17 other, rest things → 255
    assert mask[0, 0] == 0 and mask[6, 0] == 1 and mask[12, 0] == 255 and mask[-1, 0] == 255
    assert not list((root / "coco/annotations").glob("*pixelmaps*")) and _leftovers(root) == []
    assert "[val]: 1 images, 0 problems" in out and "textile" in out


def test_cityscapes_needs_its_zips_and_converts_them(tmp_path, capsys):
    root = tmp_path / "data"
    assert main(["prepare-data", "cityscapes", "--root", str(root), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gtFine_trainvaltest.zip" in err and "--from-archive" in err
    given = write_files(tmp_path / "given", tiny.cityscapes_archives())
    assert main(["prepare-data", "cityscapes", "--root", str(root), "--from-archive", str(given), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "[train]: 1 images, 0 problems" in out and "[val]: 1 images, 0 problems" in out
    city = root / "cityscapes"
    assert not (city / "gtFine" / "test").exists() and not list(city.rglob("*_color.png"))


def test_checksum_file_errors_name_the_line(tmp_path, capsys):
    bad = tmp_path / "sums.txt"
    bad.write_text("abc  VOCtrainval_11-May-2012.tar\n")
    assert main(["prepare-data", "voc", "--root", str(tmp_path), "--checksums", str(bad)]) == 2
    assert f"{bad}:1: expected" in capsys.readouterr().err


def _extract(archive: bytes, into):
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        tf.extractall(into, filter="data")
    return into


def test_voc_without_sbd_needs_only_the_voc_tar_and_says_which_split_to_train_on(tmp_path, voc_archives, capsys):
    root = tmp_path / "data"
    only_voc = {"VOCtrainval_11-May-2012.tar": voc_archives["VOCtrainval_11-May-2012.tar"]}
    with LoopbackServer(official_paths(only_voc)) as server:
        code = main(["prepare-data", "voc", "--root", str(root), "--mirror", server.url, "--no-sbd", "--no-progress",
                     "--checksums", _checksums(tmp_path, only_voc), "--out", str(tmp_path / "prep.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert [path for path, _ in server.requests] == ["/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"]
    voc = root / "VOCdevkit" / "VOC2012"
    assert not (voc / "ImageSets/SegmentationAug").exists() and not (voc / "SegmentationClassAug").exists()
    report = json.loads((tmp_path / "prep.json").read_text())
    assert report["ok"] and report["splits"] == ["train", "val"] == [c["split"] for c in report["checks"]]
    assert report["checks"][0]["images"] == len(tiny.VOC_TRAIN)
    assert f"--data-root {root / 'VOCdevkit'} --train-split train" in out
    # prepared again without --no-sbd: refused by name, nothing downloaded
    assert main(["prepare-data", "voc", "--root", str(root), "--mirror", "http://127.0.0.1:9", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "prepared without SBD (--no-sbd), so it has no trainaug" in err


@pytest.mark.parametrize("given", ["VOCdevkit", "VOCdevkit/VOC2012", "."])
def test_from_archive_takes_an_extracted_vocdevkit(tmp_path, voc_archives, capsys, given):
    extracted = _extract(voc_archives["VOCtrainval_11-May-2012.tar"], tmp_path / "mine")
    before = sorted(p.relative_to(extracted) for p in extracted.rglob("*"))
    sbd = write_files(tmp_path / "given", {"benchmark.tgz": voc_archives["benchmark.tgz"]})
    root = tmp_path / "data"
    code = main(["prepare-data", "voc", "--root", str(root), "--from-archive", str(extracted / given),
                 str(sbd / "benchmark.tgz"), "--checksums", _checksums(tmp_path, voc_archives), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    voc = root / "VOCdevkit" / "VOC2012"
    assert (voc / "ImageSets/SegmentationAug/trainaug.txt").read_text().split() == tiny.TRAINAUG
    assert "0 problems" in out and not (root / "downloads").exists() and _leftovers(root) == []
    assert sorted(p.relative_to(extracted) for p in extracted.rglob("*")) == before  # the user's folder as it was
    stamp = json.loads((voc / ".hummingbird-prepared.json").read_text())
    assert stamp["archives"]["VOCtrainval_11-May-2012.tar"].startswith("extracted folder ")


def test_from_archive_refuses_a_folder_that_holds_no_archive_by_name(tmp_path, capsys):
    """Even a folder named like the archive: it is named, and nothing is downloaded."""
    folder = tmp_path / "VOCtrainval_11-May-2012.tar"
    folder.mkdir()
    (folder / "notes.txt").write_text("nothing here\n")
    with LoopbackServer({}) as server:
        code = main(["prepare-data", "voc", "--root", str(tmp_path / "data"), "--from-archive", str(folder),
                     "--mirror", server.url, "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and server.requests == []
    assert f"--from-archive {folder}: a folder holding none of VOCtrainval_11-May-2012.tar, benchmark.tgz" in err
    assert "VOCdevkit/" in err and (folder / "notes.txt").is_file()


def test_a_file_mirror_is_read_in_place(tmp_path, voc_archives, capsys):
    mirror = tmp_path / "mirror"
    for path, data in official_paths(voc_archives).items():
        (mirror / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (mirror / path.lstrip("/")).write_bytes(data)
    root = tmp_path / "data"
    code = main(["prepare-data", "voc", "--root", str(root), "--mirror", mirror.as_uri(), "--no-progress",
                 "--checksums", _checksums(tmp_path, voc_archives)])
    assert code == 0, capsys.readouterr().out
    assert (root / "VOCdevkit/VOC2012/ImageSets/SegmentationAug/trainaug.txt").is_file()
    assert not (root / "downloads").exists()  # read where it is, not copied
    (mirror / "pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar").unlink()
    code = main(["prepare-data", "voc", "--root", str(tmp_path / "other"), "--mirror", mirror.as_uri(),
                 "--no-progress", "--checksums", _checksums(tmp_path, voc_archives)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "VOCtrainval_11-May-2012.tar" in err and "not found in the local mirror" in err


def test_a_root_that_cannot_be_written_is_one_line_and_the_archives_are_kept(tmp_path, voc_archives, capsys):
    from conftest import unwritable

    given = write_files(tmp_path / "given", voc_archives)
    root = tmp_path / "readonly"
    root.mkdir()
    with unwritable(root):
        code = main(["prepare-data", "voc", "--root", str(root), "--from-archive", str(given), "--no-progress",
                     "--checksums", _checksums(tmp_path, voc_archives)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"hummingbird prepare-data: error: {root}: cannot write:")
    assert sorted(p.name for p in given.iterdir()) == sorted(voc_archives) and list(root.iterdir()) == []
