"""The package's shape, checked: imports go one way, from the command line down to the core.

    core (config, errors, atomic writes, metrics, templates, checkpoints)
      <- data (locate, validate, melt, dedup, folds, processed datasets, submission)
      <- methods (one Method interface: tfidf, embeddings, hybrid, transformer)
      <- pipeline (build -> fit -> predict -> submit)
      <- evaluate (cv, blend, report), kaggle (wheels, bundle, budget, notebook), bench, gpu_check
      <- cli (parses arguments; imported by nothing outside it)

Function-level imports count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "jigsaw_kit"
LAYERS = {
    "core": 0,
    "data": 1,
    "methods": 2,
    "pipeline": 3,
    "evaluate": 4,
    "kaggle": 4,
    "bench": 4,
    "gpu_check": 4,
    "cli": 5,
}
MAX_LINES = 450
MAX_FUNCTION_LINES = 80  # and over ~60 a docstring says why


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = ["jigsaw_kit", *p.relative_to(PKG).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return 0  # jigsaw_kit/__init__.py: the version string
    return LAYERS[parts[1]]


def _imports(module: str, path: Path) -> set[str]:
    """Kit modules imported anywhere in the file, resolved to module names."""
    pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] == "jigsaw_kit"}
    return {n if n in MODULES else n.rsplit(".", 1)[0] for n in found} - {module}


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_every_module_belongs_to_a_layer():
    unknown = [m for m in MODULES if len(m.split(".")) > 1 and m.split(".")[1] not in LAYERS]
    assert not unknown, f"modules outside the layer map {LAYERS}: {unknown}"


def test_imports_only_go_down():
    upward = [
        f"{m} (layer {_layer(m)}) imports {i} (layer {_layer(i)})"
        for m, deps in GRAPH.items()
        for i in deps
        if _layer(i) > _layer(m)
    ]
    assert not upward, "\n".join(upward)


def _in_cli(module: str) -> bool:
    return module == "jigsaw_kit.cli" or module.startswith("jigsaw_kit.cli.")


def test_nothing_imports_the_cli():
    assert not [m for m, deps in GRAPH.items() if not _in_cli(m) and any(_in_cli(d) for d in deps)]


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(GRAPH.get(m, ())):
            if state.get(d) == 1:
                cycle = path[path.index(d) :] + [d] if d in path else [m, d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])


def test_modules_stay_small():
    big = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not big, f"split these modules (over {MAX_LINES} lines): {big}"


def _long_functions(source: str, limit: int) -> dict[str, int]:
    """{qualified name: lines} of every function (methods and nested ones too) longer than limit lines."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = f"{prefix}{getattr(child, 'name', '')}"
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = child.end_lineno - child.lineno + 1  # decorators aside: def line to last line
                if n > limit:
                    found[name] = n
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def test_functions_stay_short():
    long = {
        f"{m}.{f}": n
        for m, p in MODULES.items()
        for f, n in _long_functions(p.read_text(encoding="utf-8"), MAX_FUNCTION_LINES).items()
    }
    assert not long, f"split these functions (over {MAX_FUNCTION_LINES} lines): {long}"


def test_the_function_cap_sees_a_long_function():
    # The cap must be able to fail: a method and the function nested in it are listed, a short one is not.
    lines = ["class A:", "    def m(self):", *[f"        x{i} = {i}" for i in range(5)], "        def inner():"]
    lines += [*[f"            y{i} = {i}" for i in range(5)], "", "def ok():", "    pass", ""]
    assert _long_functions("\n".join(lines), 5) == {"A.m": 12, "A.m.inner": 6}
