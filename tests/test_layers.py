"""The package's layers only point down (docs/contributing.md): every import, module-level or inside a function,
is read with ``ast`` and checked against the layer order; module-level imports form no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sr_compress"

#: lowest first; a module may import from its own layer or any layer below (docs/contributing.md, "Layers")
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("infrastructure", ("__init__", "errors", "registry", "fileio", "config", "compat", "color", "imresize",
                        "metrics", "images", "data", "visual", "validate")),
    ("models", ("models",)),
    ("checkpoint", ("checkpoint",)),
    ("inference", ("infer", "evaluate")),
    ("compress", ("compress",)),
    ("train", ("train",)),
    ("deploy", ("deploy",)),
    ("ops", ("ops",)),
    ("cli / recipes", ("cli", "recipes", "__main__")),
]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = ["sr_compress", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for i, (_, names) in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: not in any layer; add it to LAYERS here and in docs/contributing.md")


def imports(path: Path, root: Path = ROOT) -> list[tuple[str, int, bool]]:
    """(imported sr_compress module, line, lazy) for every import of the file; lazy: inside a function or an
    ``if TYPE_CHECKING:`` block (checked for direction, not for cycles)."""
    module, is_pkg = module_name(path, root), path.name == "__init__.py"
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                    base = ".".join(pkg[: len(pkg) - child.level + 1] + ([base] if base else []))
                out.append((base, child.lineno, in_func))
            elif isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, in_func) for a in child.names)
            typing_only = isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING"
            visit(child, in_func or typing_only
                  or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return [(m, line, f) for m, line, f in out if m == "sr_compress" or m.startswith("sr_compress.")]


FILES = sorted(ROOT.rglob("*.py"))


def test_every_module_has_a_layer():
    for f in FILES:
        layer(module_name(f))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_point_down(path):
    here = module_name(path)
    upward = [f"line {line}{' (in a function)' if in_func else ''}: {target} ({LAYERS[layer(target)][0]})"
              for target, line, in_func in imports(path) if layer(target) > layer(here)]
    assert not upward, f"{here} ({LAYERS[layer(here)][0]}) imports from a layer above it: {upward}"


def test_module_level_imports_have_no_cycle():
    known = {module_name(f): f for f in FILES}
    graph: dict[str, set[str]] = {}
    for name, f in known.items():
        deps = set()
        for target, _, in_func in imports(f):
            while target not in known and "." in target:  # `from pkg import name` → the module pkg
                target = target.rsplit(".", 1)[0]
            if not in_func and target != name and not name.startswith(target + "."):
                deps.add(target)  # a package's own __init__ runs before its submodules: not an edge back
        graph[name] = deps
    state: dict[str, int] = {}

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " → ".join([*path[path.index(dep):], dep]))
            if dep not in state:
                walk(dep, [*path, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])


def test_the_checker_sees_an_upward_import(tmp_path):
    """The check can fail: a function-level import of the ops layer inside compress/ is reported as upward."""
    fake = tmp_path / "compress" / "fake.py"
    fake.parent.mkdir()
    fake.write_text("from ..models import SRModel\n\n\ndef _x():\n    from ..ops.slim import slim_checkpoint\n")
    found = imports(fake, tmp_path)
    assert found == [("sr_compress.models", 1, False), ("sr_compress.ops.slim", 5, True)]
    here = layer(module_name(fake, tmp_path))
    assert [t for t, _, _ in found if layer(t) > here] == ["sr_compress.ops.slim"]
