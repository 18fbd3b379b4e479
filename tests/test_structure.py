"""The package's structure: subpackages by responsibility in layers that import only downwards, no import
circle between modules (imports inside functions included), a thin command line, a light top-level import,
and one declared, documented public API."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hummingbird", "fungi_dense")

# Each module's layer, by the longest matching name prefix: a module may import its own layer or lower ones,
# never a higher one (the command line and the web app import the library, never the reverse).
LAYERS = {
    "hummingbird": 0, "hummingbird.errors": 0, "hummingbird.files": 0, "hummingbird.runtime": 0,
    "hummingbird.catalog": 1, "hummingbird.models": 1, "hummingbird.datasets": 1,
    "hummingbird.memory": 2, "fungi_dense": 2,
    "hummingbird.evaluation": 3, "hummingbird.visual": 3, "hummingbird.pipeline": 3,
    "hummingbird.settings": 4, "hummingbird.building": 4, "hummingbird.probing": 4, "hummingbird.segmenter": 4,
    "hummingbird.tasks": 4,
    "hummingbird.cli": 5, "hummingbird.app": 5, "hummingbird.__main__": 5,
}


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports() -> dict[str, set[str]]:
    """Module → the package modules it imports anywhere in its file."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = _module_name(path)
            modules[name] = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                    names = [f"{node.module}.{a.name}" for a in node.names]
                    modules[name].update([node.module, *names])
                elif isinstance(node, ast.Import):
                    modules[name].update(a.name for a in node.names if a.name.split(".")[0] in PACKAGES)
    return {m: {d for d in deps if d in modules and d != m and d not in PACKAGES} for m, deps in modules.items()}


def _layer(module: str) -> int:
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    if prefix is None:
        raise AssertionError(f"{module}: not placed in a layer of tests/test_structure.py LAYERS")
    return LAYERS[prefix]


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


def test_layer_lookup_takes_the_longest_prefix():
    assert _layer("hummingbird.cli.parser") == 5 and _layer("hummingbird.catalog") == 1
    assert _layer("hummingbird") == 0 and _layer("hummingbird.memory.bank") == 2
    with pytest.raises(AssertionError, match="not placed"):
        _layer("elsewhere.module")


def test_no_import_from_a_higher_layer():
    upward = sorted(f"{module} (layer {_layer(module)}) imports {dep} (layer {_layer(dep)})"
                    for module, deps in _imports().items() for dep in deps if _layer(dep) > _layer(module))
    assert upward == []


def test_few_top_level_modules():
    top = sorted(p.name for p in (ROOT / "hummingbird").glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(top) <= 8, top


def test_every_module_says_what_it_holds():
    missing = [_module_name(p) for package in PACKAGES for p in (ROOT / package).rglob("*.py")
               if p.name != "__main__.py" and not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []


def test_the_command_line_is_thin():
    for path in (ROOT / "hummingbird" / "cli").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name


def test_public_api_is_declared_once_and_documented():
    import hummingbird

    assert "Segmenter" in hummingbird.__all__
    for name in hummingbird.__all__:
        value = getattr(hummingbird, name)
        assert name == "__version__" or (value.__doc__ or "").strip(), f"hummingbird.{name} has no docstring"


def test_importing_the_package_imports_no_heavy_library():
    code = ("import sys, hummingbird; print(sorted(m for m in ('torch', 'timm', 'faiss', 'numpy') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
