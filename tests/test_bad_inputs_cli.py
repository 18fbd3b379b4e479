"""Bad input given to the command line: refused in one line naming the option or file (exit 2), and
nothing a user already had is overwritten or silently mis-read (issue 10, defects 1-9)."""

from __future__ import annotations

import pytest

from hummingbird.cli import main

NEEDS = {  # the required options of each command, so that only the option under test is wrong
    "build-memory": ["--dataset", "folder", "--data-root", "ds", "--out", "OUT"],
    "evaluate": ["--dataset", "folder", "--data-root", "ds", "--bank", "b.safetensors", "--out", "OUT"],
    "segment": ["--bank", "b.safetensors", "--images", "x.png", "--out-dir", "OUT"],
    "neighbours": ["--bank", "b.safetensors", "--image", "x.png", "--patch", "0,0", "--out", "OUT"],
    "viewer": ["--bank", "b.safetensors", "--images", "x.png", "--out", "OUT"],
    "check-dataset": ["ds", "--out", "OUT"],
}

OUT_OF_RANGE = [  # (command, option, value)
    ("evaluate", "--k", "0"), ("segment", "--k", "-3"), ("evaluate", "--temperature", "0"),
    ("evaluate", "--temperature", "-0.5"), ("segment", "--temperature", "nan"), ("evaluate", "--temperature", "inf"),
    ("build-memory", "--batch-size", "0"), ("evaluate", "--num-workers", "-1"), ("segment", "--alpha", "1.5"),
    ("segment", "--alpha", "-0.1"), ("build-memory", "--memory-size", "0"), ("build-memory", "--augmentation-epochs", "0"),
    ("build-memory", "--input-size", "0"), ("evaluate", "--nprobe", "0"), ("evaluate", "--refine", "0"),
    ("viewer", "--max-images", "0"), ("check-dataset", "--patch-size", "0"), ("build-memory", "--shard-images", "0"),
    ("build-memory", "--num-classes", "0"), ("check-dataset", "--num-classes", "300"), ("evaluate", "--clusters", "0"),
    ("evaluate", "--probe-epochs", "0"), ("evaluate", "--probe-lr", "0"), ("build-memory", "--fungi-negatives", "0"),
    ("build-memory", "--fungi-temperature", "0"), ("build-memory", "--fungi-support-fraction", "0"),
    ("build-memory", "--fungi-support-fraction", "1.5"), ("build-memory", "--fungi-dim", "0"),
    ("build-memory", "--fungi-pca-dim", "-1"), ("build-memory", "--fungi-latent-dim", "0"),
    ("build-memory", "--seed", "-1"), ("evaluate", "--k", "three"), ("segment", "--batch-size", "2.5"),
]


@pytest.mark.parametrize("command,option,value", OUT_OF_RANGE)
def test_numeric_options_are_refused_at_parse_time(tmp_path, capsys, command, option, value):
    out = tmp_path / "earlier_output.json"
    out.write_bytes(b'{"mIoU": 0.5}\n')  # a result a user already has
    argv = [command, *[str(out) if a == "OUT" else a for a in NEEDS[command]], option, value]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and f"hummingbird {command}: error: argument {option}: must be" in err, err
    assert repr(value) in err and "Traceback" not in err
    assert out.read_bytes() == b'{"mIoU": 0.5}\n'
