"""Code-shape figures for the operations-layer refactor (issue #12): rerun on any tree.

    python benchmarks/code_figures.py [REPO_ROOT] [--edges]

Prints: lines in sr_compress/cli/, the 10 longest functions (name: lines), the number of function-level
imports (import statements inside function bodies), the upward import edges between layers (module- and
function-level), and, per existing stage, the files of the upper layers (cli/, ops/, recipes, stages.py,
workflows.py) that wire it in — a proxy for the files one touches to add a stage beside its pure function.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_layers import LAYERS as RULE  # noqa: E402  (the enforced layer order, written once there)

# Lower index = lower layer. A module may import from its own layer or below. The rule, plus the top-level
# workflows.py and stages.py that the trees before the refactor (e.g. 08f993c) had at the operations layer.
LAYERS = [(name, tops + (("workflows", "stages") if name == "ops" else ())) for name, tops in RULE]


def layer_of(module: str) -> int | None:
    """Layer index of a dotted sr_compress module name (None outside the package or unknown)."""
    parts = module.split(".")
    if parts[0] != "sr_compress":
        return None
    if len(parts) == 1:
        return 0
    for i, (_, tops) in enumerate(LAYERS):
        if parts[1] in tops:
            return i
    return None


def module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(tree: ast.AST, module: str, is_pkg: bool) -> list[tuple[str, bool]]:
    """(imported module, is function-level) for every import in a module."""
    out: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, in_func) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (child.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                out.append((base, in_func))
                # `from pkg import submodule` names a submodule: count it too
                out.extend((f"{base}.{a.name}", in_func) for a in child.names if a.name != "*")
            visit(child, nested)

    visit(tree, False)
    return out


def figures(root: Path) -> dict:
    pkg = root / "sr_compress"
    files = sorted(pkg.rglob("*.py"))
    known = {module_name(root, f) for f in files}
    funcs: list[tuple[int, str]] = []
    n_func_imports = 0
    edges: set[tuple[str, str]] = set()
    for f in files:
        mod = module_name(root, f)
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                funcs.append((node.end_lineno - node.lineno + 1, f"{mod}.{node.name}"))
        for target, in_func in imports_of(tree, mod, f.name == "__init__.py"):
            if in_func and target.startswith("sr_compress") and target in known | {"sr_compress"}:
                pass
            if target in known or target.split(".")[0] == "sr_compress":
                lo, hi = layer_of(mod), layer_of(target)
                if target in known and lo is not None and hi is not None and hi > lo:
                    edges.add((mod, target))
        n_func_imports += sum(
            1 for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for sub in ast.walk(node) if isinstance(sub, (ast.Import, ast.ImportFrom)) and _direct(node, sub)
        )
    cli_lines = sum(len(p.read_text().splitlines()) for p in (pkg / "cli").rglob("*.py"))
    stage_files = {stage: wiring_files(pkg, files, stage) for stage in STAGES}
    funcs.sort(reverse=True)
    return {"cli_lines": cli_lines, "longest": funcs[:10], "function_imports": n_func_imports,
            "upward_edges": sorted(edges), "stage_files": stage_files}


STAGES = ("slim", "plainify", "truncate", "export")
UPPER = ("cli", "ops", "recipes", "recipes.py", "stages.py", "workflows.py")


def wiring_files(pkg: Path, files: list[Path], stage: str) -> list[str]:
    """Upper-layer files that register, adapt or compose the stage ``stage``."""
    needles = (f"{stage}_cmd", f'"{stage}"', f"compress.{stage}", f"compress import {stage}", f"ops.{stage}",
               f"ops import {stage}", f"{stage}_checkpoint", f"{stage}_file", f"{stage}_onnx")
    out = []
    for f in files:
        rel = f.relative_to(pkg)
        if rel.parts[0] in UPPER and not rel.name.startswith("_docs") and any(n in f.read_text() for n in needles):
            out.append(str(rel))
    return sorted(out)


def _direct(func: ast.AST, node: ast.AST) -> bool:
    """True when `node` belongs to `func` itself, not to a function nested in it (counted once)."""
    for child in ast.iter_child_nodes(func):
        if child is node:
            return True
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if _direct(child, node):
            return True
    return False


def main(argv: list[str]) -> None:
    root = Path(next((a for a in argv if not a.startswith("-")), Path(__file__).resolve().parents[1]))
    fig = figures(root)
    out = sys.stdout.write
    out(f"lines in sr_compress/cli/: {fig['cli_lines']}\n")
    out(f"function-level imports: {fig['function_imports']}\n")
    out(f"upward import edges: {len(fig['upward_edges'])}\n")
    if "--edges" in argv:
        for a, b in fig["upward_edges"]:
            out(f"  {a} -> {b}\n")
    for stage, wiring in fig["stage_files"].items():
        out(f"upper-layer files wiring the {stage} stage: {len(wiring)} ({', '.join(wiring)})\n")
    out("10 longest functions:\n")
    for n, name in fig["longest"]:
        out(f"  {name}: {n}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
