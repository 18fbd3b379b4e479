"""The data cache: ``--dataset NAME`` without ``--data-root`` finds the dataset in $HUMMINGBIRD_DATA (or
~/.cache/hummingbird/data) or prepares it there first, from a loopback mirror or archives put in its
downloads/ folder; offline it stops at once with one line naming the archives and where they go."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import tiny_archives as tiny
from conftest import write_voc
from realdata import SHARED
from tiny_archives import LoopbackServer

from hummingbird.cli.main import main
from hummingbird.datasets import cache
from hummingbird.datasets.prepare.archives import ARCHIVES

ROOT = Path(__file__).resolve().parents[1]
CLOSED = "http://127.0.0.1:9"  # nothing listens there: connection refused at once
VOC_NAMES = ("VOCtrainval_11-May-2012.tar", "benchmark.tgz")


@pytest.fixture
def data_cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("HUMMINGBIRD_DATA", str(folder))
    return folder


def _serve_from(monkeypatch, base: str, archives: dict[str, bytes]) -> None:
    """Point each archive's official URL at ``base`` (same path) with the tiny archive's own checksum."""
    from urllib.parse import urlsplit

    for name, data in archives.items():
        official = ARCHIVES[name]
        monkeypatch.setitem(ARCHIVES, name, replace(official, url=base + urlsplit(official.url).path,
                                                    checksum=f"md5:{hashlib.md5(data).hexdigest()}"))


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_the_cache_is_HUMMINGBIRD_DATA_else_the_home_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("HUMMINGBIRD_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache.data_cache() == tmp_path / ".cache" / "hummingbird" / "data"
    monkeypatch.setenv("HUMMINGBIRD_DATA", "relative/data")
    assert cache.data_cache() == Path.cwd() / "relative" / "data"
    assert cache.cache_folder("ade20k") == Path.cwd() / "relative" / "data" / "ade20k"


def test_evaluate_finds_voc_in_the_cache_and_builds_from_its_training_split(data_cache, tmp_path, capsys):
    root = write_voc(data_cache / "voc")
    out = tmp_path / "r.json"
    code = main(["evaluate", "--dataset", "voc", "--backbone", "dino_vits16", "--weights", "random", "--input-size",
                 "32", "--k", "5", "--num-workers", "0", "--batch-size", "2", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"voc: found in the data cache: {root / 'VOCdevkit'}" in err
    result = json.loads(out.read_text())
    assert result["num_images"] == 1 and 0 <= result["mIoU"] <= 1  # the one val image of the cached VOC
    assert result["config"]["data_root"] == str(root / "VOCdevkit" / "VOC2012") and result["config"]["split"] == "val"
    assert result["bank"]["num_images"] == 3  # built from trainaug (3 ids), the default training split


def test_check_dataset_prepares_voc_in_the_cache_from_a_mirror_then_finds_it(data_cache, monkeypatch, capsys):
    archives = {"VOCtrainval_11-May-2012.tar": tiny.voc_tar(), "benchmark.tgz": tiny.sbd_tgz()}
    with LoopbackServer(tiny.official_paths(archives)) as server:
        _serve_from(monkeypatch, server.url, archives)
        assert main(["check-dataset", "--dataset", "voc", "--split", "trainaug", "--no-progress"]) == 0
    captured = capsys.readouterr()
    voc = data_cache / "voc" / "VOCdevkit"
    assert f"voc: prepared now in the data cache: {voc}" in captured.err
    assert "[trainaug]: 4 images, 0 problems" in captured.err  # prepare-data's own checks, then check-dataset's
    assert "[trainaug]: 4 images, 0 problems" in captured.out
    assert (voc / "VOC2012" / ".hummingbird-prepared.json").is_file()
    assert sorted(p.name for p in (data_cache / "voc" / "downloads").iterdir()) == sorted(archives)
    assert len(server.requests) == 2
    # the server is gone: the second run finds the prepared copy and downloads nothing
    assert main(["check-dataset", "--dataset", "voc", "--split", "val", "--no-progress"]) == 0
    assert f"voc: found in the data cache: {voc}" in capsys.readouterr().err


def test_archives_put_in_the_downloads_folder_are_used_offline(data_cache, monkeypatch, capsys):
    """What the offline message advises: archives in <cache>/<name>/downloads/ and the same command again."""
    archive = {"ADEChallengeData2016.zip": tiny.ade20k_zip()}
    _serve_from(monkeypatch, CLOSED, archive)
    tiny.write_files(data_cache / "ade20k" / "downloads", archive)
    assert main(["check-dataset", "--dataset", "ade20k", "--split", "validation", "--no-progress"]) == 0
    assert "ade20k: prepared now in the data cache" in capsys.readouterr().err
    assert (data_cache / "ade20k" / "ADEChallengeData2016" / "images" / "validation").is_dir()


def test_offline_evaluate_stops_at_once_with_one_line_naming_the_archives(data_cache, monkeypatch, capsys):
    _serve_from(monkeypatch, CLOSED, dict.fromkeys(VOC_NAMES, b""))
    started = time.perf_counter()
    code = main(["evaluate", "--dataset", "voc", "--backbone", "dino_vits16", "--no-progress"])
    elapsed = time.perf_counter() - started
    err = _one_line(capsys)
    assert code == 2 and elapsed < 5, elapsed
    root = data_cache / "voc"
    assert f"voc is not in the data cache ({data_cache})" in err and "Connection refused" in err
    assert "VOCtrainval_11-May-2012.tar (1.9 GB) and benchmark.tgz (1.4 GB)" in err
    assert f"put them in {root / 'downloads'}/ and run again" in err
    assert f"hummingbird prepare-data voc --root {root} --from-archive ARCHIVE" in err
    assert not root.exists() or not any(root.iterdir())  # nothing half-made left


def test_offline_whole_command_takes_under_5_s(tmp_path):
    """The same as a user runs it: a fresh process (start-up included), the archives' host out of reach."""
    code = ("import sys; from dataclasses import replace; from urllib.parse import urlsplit; "
            "from hummingbird.datasets.prepare.archives import ARCHIVES; "
            f"ARCHIVES.update({{n: replace(a, url={CLOSED!r} + urlsplit(a.url).path) for n, a in ARCHIVES.items()}}); "
            "from hummingbird.cli.main import entry_point; "
            "sys.exit(entry_point(['evaluate', '--dataset', 'ade20k', '--backbone', 'dino_vits16']))")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={"HUMMINGBIRD_DATA": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
                               "PATH": "/usr/bin:/bin"})
    elapsed = time.perf_counter() - started
    assert done.returncode == 2 and elapsed < 5, (elapsed, done.stderr)
    assert done.stderr.count("\n") == 1 and "ADEChallengeData2016.zip (923 MB)" in done.stderr
    assert "prepare-data ade20k --root" in done.stderr and "--from-archive" in done.stderr


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture
def silent_name_server(monkeypatch):
    """A name server that never answers for archives.example (the system's lookup would wait for it far
    longer than 5 s)."""
    import socket

    from hummingbird.datasets.prepare import download

    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    lookup = socket.getaddrinfo

    def silent(host, *args, **kwargs):
        if host == "archives.example":
            time.sleep(30)
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", silent)
    monkeypatch.setattr(download, "LOOKUP_TIMEOUT_S", 0.3)


def test_a_name_server_out_of_reach_is_given_up_on_quickly(data_cache, silent_name_server, monkeypatch, capsys):
    _serve_from(monkeypatch, "http://archives.example", {"ADEChallengeData2016.zip": b""})
    started = time.perf_counter()
    assert main(["check-dataset", "--dataset", "ade20k"]) == 2
    assert time.perf_counter() - started < 2
    assert "no answer from the name server for archives.example within 0.3 s" in _one_line(capsys)


def test_behind_a_proxy_the_proxy_looks_names_up(data_cache, silent_name_server, monkeypatch, capsys):
    """No name lookup of our own when a proxy carries the request (it may be the only way out)."""
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    _serve_from(monkeypatch, "http://archives.example", {"ADEChallengeData2016.zip": b""})
    assert main(["check-dataset", "--dataset", "ade20k"]) == 2
    err = _one_line(capsys)
    assert "name server" not in err and "Connection refused" in err and "ADEChallengeData2016.zip (923 MB)" in err


def test_cityscapes_explains_its_login(data_cache, tmp_path, capsys):
    (data_cache / "cityscapes" / "downloads").mkdir(parents=True)
    (data_cache / "cityscapes" / "downloads" / "gtFine_trainvaltest.zip").write_bytes(b"given")
    assert main(["build-memory", "--dataset", "cityscapes", "--out", str(tmp_path / "never.safetensors")]) == 2
    err = _one_line(capsys)
    assert "cityscapes is not in the data cache" in err and "need a login: log in at www.cityscapes-dataset.com" in err
    assert "download leftImg8bit_trainvaltest.zip (11 GB), put it in" in err  # only the missing one
    assert "gtFine" not in err.split("put it in")[0]
    assert f"{data_cache / 'cityscapes' / 'downloads'}/" in err and "--from-archive" in err


def test_a_folder_dataset_still_needs_its_folder(data_cache, capsys):
    assert main(["check-dataset", "--dataset", "folder"]) == 2
    assert "--dataset folder needs its folder (--data-root DIR)" in _one_line(capsys)


def test_a_second_process_waits_for_the_first_to_finish_preparing(data_cache, monkeypatch):
    from hummingbird.files.locking import exclusive_output

    monkeypatch.setattr(cache, "WAIT_S", 0.05)
    results = []
    with exclusive_output(data_cache / "ade20k"), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        waiting = threading.Thread(target=lambda: results.append(cache.dataset_from_cache("ade20k", progress=False)))
        waiting.start()
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "another hummingbird process is preparing" in str(seen[0].message) and results == []
        (data_cache / "ade20k" / "ADEChallengeData2016").mkdir(parents=True)  # the other process finished
    waiting.join(5)
    assert results[0].data_root == str(data_cache / "ade20k" / "ADEChallengeData2016") and not results[0].prepared_now


@pytest.mark.realdata
def test_HUMMINGBIRD_DATA_may_point_at_the_shared_folder(monkeypatch, capsys):
    if not (SHARED / "voc" / "VOCdevkit" / "VOC2012" / "JPEGImages").is_dir():
        pytest.skip("no ../shared/voc")
    monkeypatch.setenv("HUMMINGBIRD_DATA", str(SHARED))
    assert main(["check-dataset", "--dataset", "voc", "--split", "val", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert f"voc: found in the data cache: {SHARED / 'voc' / 'VOCdevkit'}" in captured.err
    assert "[val]: 321 images, 0 problems" in captured.out
