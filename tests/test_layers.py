"""The package's shape, checked: imports go one way, from the command line down to the core.

    core (config, errors, atomic writes, metrics, templates, checkpoints)
      <- data (locate, validate, melt, dedup, folds, processed datasets, submission)
      <- methods (one Method interface: tfidf, embeddings, hybrid, transformer)
      <- pipeline (build -> fit -> predict -> submit)
      <- evaluate (cv, blend, report), kaggle (wheels, bundle, budget, notebook), bench, gpu_check
      <- cli (parses arguments; imported by nothing)

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
MAX_LINES = 600


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


def test_nothing_imports_the_cli():
    assert not [m for m, deps in GRAPH.items() if "jigsaw_kit.cli" in deps]


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


def test_the_layer_test_sees_a_violation(tmp_path):
    # The checks above must be able to fail: a core module importing the CLI is caught.
    src = "from jigsaw_kit.cli import main\n"
    p = tmp_path / "x.py"
    p.write_text(src)
    deps = _imports("jigsaw_kit.core.x", p)
    assert deps == {"jigsaw_kit.cli"} and _layer("jigsaw_kit.cli") > _layer("jigsaw_kit.core.x")
