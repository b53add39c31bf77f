"""Nothing outside methods/ branches on a method's name: the pipeline, the bench, the CLI and the Kaggle layer
ask the method (methods.base.Method: fine_tunes, checkpoints, title, gpu, step_cap, ...) instead.

Checked on the source's syntax: a comparison with a registered method name ("transformer" == cfg.method,
cfg.method in ("hybrid", ...)), or of a `.method` attribute with anything. The registry itself (core/config.py's
METHODS) names them, as it must.
"""

from __future__ import annotations

import ast
from pathlib import Path

from jigsaw_kit.core.config import METHODS

PKG = Path(__file__).resolve().parents[1] / "src" / "jigsaw_kit"
EXEMPT = {"core/config.py"}  # the registry: method name -> class


def _names_in(node: ast.AST) -> list[str]:
    """Method names a comparison operand spells out: a string, or strings in a tuple, list or set."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [x.value for x in items if isinstance(x, ast.Constant) and x.value in METHODS]


def method_comparisons(source: str) -> list[tuple[int, str]]:
    """(line, what) of each comparison with a method name, or of a `.method` attribute, in the source."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        names = [n for o in operands for n in _names_in(o)]
        if names:
            hits.append((node.lineno, f"compares with the method name(s) {names}"))
        elif any(isinstance(o, ast.Attribute) and o.attr == "method" for o in operands):
            hits.append((node.lineno, "compares a `.method`"))
    return hits


def _outside_methods() -> dict[str, Path]:
    files = {p.relative_to(PKG).as_posix(): p for p in PKG.rglob("*.py")}
    return {k: p for k, p in files.items() if not k.startswith("methods/") and k not in EXEMPT}


def test_nothing_outside_methods_compares_a_method_name():
    found = {
        rel: hits
        for rel, p in sorted(_outside_methods().items())
        if (hits := method_comparisons(p.read_text(encoding="utf-8")))
    }
    lines = [f"{rel}:{line}: {what}" for rel, hits in found.items() for line, what in hits]
    assert not lines, "ask the method (methods/base.py) instead:\n" + "\n".join(lines)


def test_the_check_sees_each_kind_of_comparison():
    src = (
        'if cfg.method == "transformer": pass\n'
        'if "hybrid" != name: pass\n'
        'ok = kind in ("contrastive", "other")\n'
        "same = a.method is b\n"
        'fine = cfg.template == "rule-body" and method_class(cfg.method).fine_tunes\n'
    )
    assert [line for line, _ in method_comparisons(src)] == [1, 2, 3, 4]
