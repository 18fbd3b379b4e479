"""A newcomer's first hour: the offline recipe of docs/getting-started.md runs as written (no --backbone needed with
random weights), demo commands write under runs/ (never into the committed docs/ pictures), a missing input
is answered before torch is imported, the main job keeps the bank it built, --max-images makes a quick trial,
and a DataLoader without shared memory is one line or a fallback."""

from __future__ import annotations

import json
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hummingbird.cli.main import main
from hummingbird.datasets.synthetic import write_block_dataset

ROOT = Path(__file__).resolve().parents[1]
FIRST_HOUR = ROOT / "docs" / "getting-started.md"
QUIET = ["--num-workers", "0", "--no-progress"]


def _recipe() -> list[str]:
    block = re.search(r"<!-- offline-recipe -->\n```bash\n(.*?)```\n<!-- /offline-recipe -->", FIRST_HOUR.read_text(),
                      re.S)
    assert block, "docs/getting-started.md has no marked offline recipe"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_offline_recipe_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for line in _recipe():
        words = shlex.split(line)
        if words[0] == "python":
            monkeypatch.setattr(sys, "argv", [str(ROOT / words[1]), *words[2:]])
            with pytest.raises(SystemExit) as done:
                runpy.run_path(str(ROOT / words[1]), run_name="__main__")
            assert done.value.code == 0, line
        else:
            assert words[0] == "hummingbird"
            assert main([*words[1:], *QUIET]) == 0, (line, capsys.readouterr().err)
    demo = tmp_path / "runs" / "demo"
    meta = json.loads((demo / "results.json").read_text())
    assert meta["bank"]["backbone"] == "dinov2_vits14" and meta["units"].startswith("fraction")
    assert (demo / "segment" / "img017_overlay.png").is_file() and (demo / "neighbours.png").is_file()
    assert (demo / "viewer" / "index.html").is_file() and (demo / "results_per_class.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing written anywhere else


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))], ids=lambda p: p.name)
def test_documented_commands_write_under_runs_not_into_docs(page):
    commands = [line for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S)
                for line in block.replace("\\\n", " ").splitlines()]
    writing = [c for c in commands if re.search(r"--out(-dir)?[ =]+docs/", c)]
    assert writing == []


def test_the_readme_offline_sentence_needs_no_backbone(tmp_path, capsys):
    """README: 'use --dataset folder --data-root runs/demo --weights random' (it stopped with '--backbone is
    required'); without a weights file the backbone defaults to the main job's."""
    root = write_block_dataset(tmp_path / "demo", n_train=2, n_val=1, size=56, block=14)
    out = tmp_path / "bank.safetensors"
    assert main(["build-memory", "--dataset", "folder", "--data-root", str(root), "--weights", "random",
                 "--input-size", "56", "--out", str(out), *QUIET]) == 0, capsys.readouterr().err
    from hummingbird.memory.bank import MemoryBank

    assert MemoryBank.load(out).metadata["backbone"] == "dinov2_vits14"
    unknown = tmp_path / "my_finetuned.pth"
    unknown.write_bytes(b"x")
    assert main(["build-memory", "--dataset", "folder", "--data-root", str(root), "--weights", str(unknown),
                 "--out", str(out), *QUIET]) == 2
    assert "--backbone is required (it could not be told from the weights file name my_finetuned.pth" in \
        capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["segment", "--bank", "nowhere/bank.safetensors", "--images", ".", "--out-dir", "o"],
     "nowhere/bank.safetensors: memory bank file not found"),
    (["segment", "--bank", "{bank}", "--images", "no/photos", "--out-dir", "o"], "no/photos: no such image file or folder"),
    (["evaluate", "--dataset", "voc", "--data-root", "no/VOCdevkit", "--train-split", "train", "--weights", "random"],
     "no/VOCdevkit: dataset folder does not exist"),
    (["build-memory", "--dataset", "folder", "--data-root", "no/data", "--out", "b.safetensors"],
     "no/data: dataset folder does not exist"),
    (["neighbours", "--bank", "{bank}", "--image", "no/photo.png", "--point", "1,1"], "no/photo.png: image file not found"),
    (["viewer", "--bank", "nowhere.safetensors", "--images", ".", "--out", "v"], "nowhere.safetensors: memory bank"),
    (["segment", "--bank", "{bank}", "--images", ".", "--out-dir", "o", "--weights", "no/w.pth"],
     "no/w.pth: weights file not found"),
])
def test_a_missing_input_is_answered_before_torch_is_imported(argv, message, tmp_path):
    bank = tmp_path / "bank.safetensors"
    bank.write_bytes(b"not read")
    argv = [a.replace("{bank}", str(bank)) for a in argv]
    code = ("import sys; from hummingbird.cli.main import main; code = main(sys.argv[1:]); "
            "print(code, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_evaluate_keeps_the_bank_it_built_beside_the_results_and_max_images_makes_a_trial(tmp_path, capsys):
    root = write_block_dataset(tmp_path / "ds", n_train=6, n_val=4)
    out = tmp_path / "runs" / "r.json"
    common = ["evaluate", "--dataset", "folder", "--data-root", str(root), "--train-split", "train", "--backbone",
              "dino_vits16", "--weights", "random", "--input-size", "64", "--max-images", "3", *QUIET]
    assert main([*common, "--out", str(out)]) == 0
    saved = tmp_path / "runs" / "r.bank.safetensors"
    assert f"wrote {saved}" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["num_images"] == 3 and result["bank"]["num_images"] == 3  # both splits cut to 3 images
    assert main(["evaluate", "--dataset", "folder", "--data-root", str(root), "--bank", str(saved), "--max-images",
                 "3", "--out", str(tmp_path / "again.json"), *QUIET]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["confusion_matrix"] == result["confusion_matrix"]
    assert main([*common, "--out", str(tmp_path / "x.json"), "--no-save-bank"]) == 0
    assert not (tmp_path / "x.bank.safetensors").exists()
    assert main(["build-memory", "--dataset", "folder", "--data-root", str(root), "--split", "train", "--backbone",
                 "dino_vits16", "--weights", "random", "--input-size", "64", "--max-images", "2", "--out",
                 str(tmp_path / "b.safetensors"), *QUIET]) == 0
    from hummingbird.memory.bank import MemoryBank

    assert MemoryBank.load(tmp_path / "b.safetensors").metadata["image_ids"] == ["img000", "img001"]


def test_workers_without_shared_memory_fall_back_to_the_main_process(tmp_path):
    """A file size limit stops the shared-memory files of the loader workers: one warning, and the data is
    read in the main process (the bank is the one --num-workers 0 builds)."""
    import resource

    root = write_block_dataset(tmp_path / "ds", n_train=8, n_val=1)
    argv = ["build-memory", "--dataset", "folder", "--data-root", str(root), "--split", "train", "--backbone",
            "dino_vits16", "--weights", "random", "--input-size", "64", "--memory-size", "16", "--no-augment",
            "--no-progress"]
    limit = 200_000  # a batch of 8 images (393 kB) cannot pass; the 16-patch bank (≈ 30 kB) can be written

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run([sys.executable, "-m", "hummingbird", *argv, "--num-workers", "2", "--out",
                           str(tmp_path / "w.safetensors")], capture_output=True, text=True, preexec_fn=limited)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "data-loading worker processes cannot hand batches over" in warnings[0]
    assert "reading the data in this process instead (--num-workers 0)" in warnings[0]
    assert main([*argv, "--num-workers", "0", "--out", str(tmp_path / "n.safetensors")]) == 0
    from hummingbird.memory.bank import MemoryBank

    with_fallback, in_process = MemoryBank.load(tmp_path / "w.safetensors"), MemoryBank.load(tmp_path / "n.safetensors")
    assert torch.equal(with_fallback.features, in_process.features)


def test_a_shared_memory_failure_after_some_batches_is_one_line_naming_num_workers(monkeypatch):
    from hummingbird.datasets import loader
    from hummingbird.errors import ConfigError

    class Failing:
        def __iter__(self):
            yield {"image": torch.zeros(1)}
            raise RuntimeError("unable to write to file </torch_123_456_7>: No space left on device (28)")

    monkeypatch.setattr(loader.Batches, "_loader", lambda self, opts: Failing())
    batches = loader.Batches(list(range(4)), loader.LoaderOptions(num_workers=2))
    with pytest.raises(ConfigError, match=r"^data-loading worker processes cannot hand batches over: the shared "
                                          r"memory \(/dev/shm\) is full or too small \(unable to write to file "
                                          r".*; run with num_workers=0"):
        list(batches)
