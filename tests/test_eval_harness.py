"""eval/harness.py, the benchmark scripts' shared pieces, and every eval/ script's --help and JSON."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
from conftest import leftovers, write_voc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "eval"))
import harness  # noqa: E402

SCRIPTS = sorted(p.name for p in (ROOT / "eval").glob("*.py") if p.name != "harness.py")


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help_and_offers_json(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(ROOT / "eval" / script), run_name="__main__")
    out = capsys.readouterr().out
    assert stop.value.code == 0 and out.startswith("usage:")
    assert "--out" in out  # every script writes its results as JSON (--out FILE or --out-dir DIR)


def test_markdown_table():
    table = harness.markdown_table(["a", "b c"], [[1, "x"], ["", 2.5]])
    assert table == "| a | b c |\n|---|---|\n| 1 | x |\n|  | 2.5 |"


def test_spread_of_repeated_runs():
    assert harness.spread([2.0, 4.0], images=2) == {"s_per_image": 1.5, "runs_s_per_image": [1.0, 2.0],
                                                    "spread": round(1 / 1.5, 3)}


def test_write_results_adds_settings_and_environment_atomically(tmp_path, capsys):
    args = harness.parser("Doc.").parse_args([])
    args.size, args.path = 3, tmp_path  # a Path is written as text
    out = harness.write_results(tmp_path / "sub" / "r.json", {"figure": 1.5}, args)
    written = json.loads(out.read_text())
    assert written["figure"] == 1.5 and written["settings"] == {"size": 3, "path": str(tmp_path)}
    env = written["environment"]
    assert env["device"] == "cpu" and env["cpus"] >= 1 and env["torch"] and "flags" in env["cpu"]
    assert env["date"][:2] == "20" and env["command"]
    assert capsys.readouterr().out == f"wrote {out}\n" and leftovers(tmp_path) == []
    kept = harness.write_results(tmp_path / "k.json", {"settings": {"own": 1}}, args, env={"given": True}, quiet=True)
    assert json.loads(kept.read_text()) == {"settings": {"own": 1}, "environment": {"given": True}}
    assert harness.write_results(None, {"figure": 1}, args) is None and capsys.readouterr().out == ""


def test_voc_commands_name_the_first_ids_of_each_split(tmp_path):
    root = write_voc(tmp_path / "voc", ids_train=("2007_000032", "2007_000039", "2007_000040"),
                     ids_val=("2007_000033", "2007_000041"))
    bank, result = tmp_path / "b.safetensors", tmp_path / "r.json"
    build, evaluate, val_ids = harness.voc_commands(root, tmp_path, 2, 1, bank, result, ["--no-progress"],
                                                    build=["--weights", "random"])
    assert val_ids == ["2007_000033"]
    assert (tmp_path / "train.txt").read_text().split() == ["2007_000032", "2007_000039"]
    assert build == ["build-memory", "--dataset", "voc", "--data-root", str(root), "--no-progress", "--split", "train",
                     "--fileset", str(tmp_path / "train.txt"), "--weights", "random", "--out", str(bank)]
    assert evaluate[-4:] == ["--bank", str(bank), "--out", str(result)]
    assert evaluate[evaluate.index("--fileset") + 1] == str(tmp_path / "val.txt")


def test_repeated_runs_interleave_commands(monkeypatch):
    calls = []
    monkeypatch.setattr(harness, "run_cli", lambda argv: calls.append(argv[0]) or float(len(calls)))
    seconds = harness.repeated_runs({"build": ["build-memory"], "evaluate": ["evaluate"]}, repeats=2)
    assert calls == ["build-memory", "evaluate", "build-memory", "evaluate"]
    assert seconds == {"build": [1.0, 3.0], "evaluate": [2.0, 4.0]}


def test_fresh_process_is_timed_and_a_failure_ends_the_script_naming_it():
    seconds, done = harness.timed_process([sys.executable, "-c", "import hummingbird; print(hummingbird.__file__)"])
    assert seconds > 0 and done.stdout.strip() == str(ROOT / "hummingbird" / "__init__.py")  # this checkout's code
    with pytest.raises(SystemExit, match=r"(?s)-c import sys; sys.exit\('broken'\) \.\.\. failed:.*broken"):
        harness.timed_process([sys.executable, "-c", "import sys; sys.exit('broken')"])


def test_timed_block():
    with harness.timed() as clock:
        sum(range(10_000))
    assert 0 < clock.seconds < 5


def test_bench_hbird_on_generated_scenes_writes_its_figures(tmp_path, monkeypatch, capsys):
    from test_eval_scripts import _load

    bench = _load("eval/bench_hbird.py")
    out = tmp_path / "bench.json"
    assert bench.main(["--synthetic", "--weights", "random", "--train-images", "2", "--val-images", "2",
                       "--input-size", "56", "--num-workers", "0", "--throughput", "--throughput-input-size", "32",
                       "--throughput-images", "2", "--bank-size", "2000", "--queries", "50", "--index-specs",
                       "IVF8,Flat", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    evaluation = report["evaluation"]
    assert evaluation["memory"]["patches"] == 2 * 16 and evaluation["data"] == "generated 21-class block scenes"
    assert evaluation["ratio"] > 0 and evaluation["pixel_agreement_with_exact"] == 1.0  # auto is exact at 32 patches
    assert set(report["throughput"]["search"]["indexes"]) == {"Flat", "IVF8,Flat"}
    assert "cli_runs" not in report and report["settings"]["synthetic"] is True
    assert report["environment"]["cpu"] == report["machine"]["cpu"]
    assert f"wrote {out}" in capsys.readouterr().out
