"""The README and the docs site say what the code does: the README fits two screens, every relative link
resolves, every public name has a reference entry, every ``hummingbird`` command line shown parses, every
script shown exists with the options shown, and every Python block runs (on ``../shared``'s real assets, which
stand in for the reader's paths)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from realdata import real_davis, real_nyu, real_voc, real_weights

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").rglob("*.md"))
DOCUMENTS = [README, *PAGES]
FENCE = re.compile(r"(?:<!-- not run: (?P<why>[^>]+) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)


def _blocks(path: Path, lang: str) -> list[tuple[str, str | None]]:
    """``(code, reason not run or None)`` of the fenced blocks of ``lang`` in ``path``."""
    return [(m["body"], m["why"]) for m in FENCE.finditer(path.read_text()) if m["lang"] == lang]


def _command_lines(code: str) -> list[str]:
    """Shell lines of a bash block, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line.split(" #")[0].strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def _relative_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_readme_fits_two_screens():
    assert len(README.read_text().splitlines()) <= 250


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    broken = [t for t in _relative_links(path) if not (path.parent / t.split("#")[0]).exists()]
    assert broken == []


def test_every_public_name_has_a_reference_entry():
    import hummingbird

    reference = (ROOT / "docs" / "reference" / "index.md").read_text()
    missing = [name for name in hummingbird.__all__ if name != "__version__"
               and f"::: {hummingbird._PUBLIC[name]}.{name}" not in reference]
    assert missing == []


def _hummingbird_commands() -> list[tuple[str, str]]:
    found = []
    for path in DOCUMENTS:
        for code, _ in _blocks(path, "bash"):
            for line in _command_lines(code):
                words = shlex.split(line)
                if "hummingbird" in words[:4] or any(w.endswith("bin/hummingbird") for w in words[:2]):
                    start = next(i for i, w in enumerate(words) if w.endswith("hummingbird"))
                    found.append((f"{path.relative_to(ROOT)}: {line[:60]}", words[start + 1:]))
    return found


@pytest.mark.parametrize("where,argv", _hummingbird_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_shown_parses(where, argv):
    from hummingbird.cli.parser import build_parser

    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{where}: does not parse (exit {exc.code})")


def _script_lines() -> list[tuple[str, Path, list[str]]]:
    found = []
    for path in DOCUMENTS:
        for code, _ in _blocks(path, "bash"):
            for line in _command_lines(code):
                words = shlex.split(line)
                script = next((w for w in words if w.endswith(".py") and ("eval/" in w or "data/" in w)), None)
                if script:
                    found.append((f"{path.relative_to(ROOT)}: {line[:60]}", ROOT / script,
                                  [w.split("=")[0] for w in words if w.startswith("--")]))
    return found


@pytest.mark.parametrize("where,script,options", _script_lines(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_script_shown_exists_with_its_options(where, script, options):
    assert script.is_file(), where
    known, todo, seen = "", [script], set()
    while todo:  # the script and the eval modules it imports, transitively (the harness's shared options)
        path = todo.pop()
        seen.add(path)
        text = path.read_text()
        known += text
        todo += [p for p in script.parent.glob("*.py")
                 if p not in seen and re.search(rf"^\s*(from|import) {p.stem}\b", text, re.M)]
    missing = [o for o in options if f'"{o}"' not in known]
    assert missing == [], where


def _python_pages() -> list[Path]:
    return [p for p in PAGES if _blocks(p, "python")]


@pytest.mark.parametrize("page", _python_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(page, tmp_path, monkeypatch):
    """The page's Python blocks in order, sharing one namespace as a reader's session does; the reader's
    paths (``data/VOCdevkit/VOC2012``, ``weights/...``) stand for the shared real assets."""
    _, weights = real_weights()
    voc = real_voc()
    voc2012 = next(v for v in (voc, voc / "VOC2012", voc / "VOCdevkit" / "VOC2012") if (v / "JPEGImages").is_dir())
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    ran = 0
    for code, why in _blocks(page, "python"):
        if why:
            continue
        code = code.replace("data/VOCdevkit/VOC2012", str(voc2012))
        code = code.replace("weights/dinov2_vits14_pretrain.pth", str(weights))
        code = code.replace("data/nyu", str(real_nyu())) if "data/nyu" in code else code
        code = code.replace("data/DAVIS", str(real_davis())) if "data/DAVIS" in code else code
        exec(compile(code, f"{page.name} block", "exec"), scope)  # noqa: S102 (the docs' own examples)
        ran += 1
    assert ran, f"{page}: every Python block is marked not run"

