"""The package's structure: no import circle between its modules (imports inside functions included),
and a thin command line."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hummingbird", "fungi_dense")


def _imports() -> dict[str, set[str]]:
    """Module → the package modules it imports anywhere in its file."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                    names = [f"{node.module}.{a.name}" for a in node.names] if node.module in PACKAGES else []
                    modules[name].update([node.module, *names])
                elif isinstance(node, ast.Import):
                    modules[name].update(a.name for a in node.names if a.name.split(".")[0] in PACKAGES)
    return {m: {d for d in deps if d in modules and d != m and d not in PACKAGES} for m, deps in modules.items()}


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep, path + [dep])):
                return found
        state[node] = 2
        return None

    return next((c for m in sorted(graph) if m not in state and (c := visit(m, [m]))), None)


def test_circle_finder_finds_a_circle():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle():
    assert _circle(_imports()) is None


def test_the_command_line_is_thin():
    assert len((ROOT / "hummingbird" / "cli.py").read_text().splitlines()) <= 400
