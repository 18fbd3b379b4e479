"""The command line answers ``--help`` without importing torch, and every option shows its default."""

import argparse
import subprocess
import sys

import pytest

from hummingbird.cli.parser import build_parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_importing_the_cli_imports_no_heavy_library():
    code = ("import sys; import hummingbird.cli.main as c; c.build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'timm', 'faiss', 'torchvision', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_help_runs_and_shows_every_default(command):
    done = subprocess.run([sys.executable, "-m", "hummingbird", command, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith(f"usage: hummingbird {command}")
    assert "torch" not in done.stderr
    assert "%%" not in done.stdout  # a percent sign printed as argparse's escape (neighbours' "50 %%")
    parser = _subcommands()[command]
    text = " ".join(parser.format_help().split("\noptions:", 1)[1].split())  # the option list, not the usage
    for action in parser._actions:
        if not action.option_strings or action.default in (None, argparse.SUPPRESS) or action.default is False:
            continue
        assert action.help, f"{command} {action.option_strings[0]} has no help"
        default = action.default
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        entry = text[text.index(action.option_strings[-1] + " "):][:400]
        entry = entry[:entry.index(")", entry.index("default")) + 1]
        assert shown in entry, (action.option_strings, entry)


def test_catalog_names_match_the_implementations():
    from hummingbird.catalog import DATASET_KINDS, PRESET_NAMES, PROTOCOL_PRESETS
    from hummingbird.datasets.registry import DATASETS
    from hummingbird.evaluation.protocols import PROTOCOLS
    from hummingbird.models.backbones import PRESETS

    assert PRESET_NAMES == tuple(PRESETS)
    assert DATASET_KINDS == tuple(DATASETS)
    assert PROTOCOL_PRESETS == tuple(PROTOCOLS)


def test_program_entry_point_returns_mains_code_and_freezes_what_is_alive(capsys):
    """The installed ``hummingbird`` (and ``python -m hummingbird``) runs cli.entry_point: main's exit code,
    then the objects alive are moved out of the collector's reach (the final collection skips them)."""
    import gc

    from hummingbird.cli.main import entry_point

    gc.unfreeze()
    try:
        assert entry_point(["backbones", "--json"]) == 0
        assert gc.get_freeze_count() > 1000
        assert entry_point(["check-dataset", "--dataset", "folder", "/nonexistent/x"]) == 1  # problems found
    finally:
        gc.unfreeze()
    assert "/nonexistent/x: dataset folder does not exist" in capsys.readouterr().out
    assert subprocess.run([sys.executable, "-m", "hummingbird", "backbones"], capture_output=True).returncode == 0
