"""The layout rules of ARCHITECTURE.md, checked on the source: layers import downward, no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "edgeopt"


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = f
    return out


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the edgeopt modules it imports anywhere in the file (top level or inside functions)."""
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for m, f in modules.items():
        for node in ast.walk(ast.parse(f.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("edgeopt"):
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            edges[m] |= {n for n in names if n in modules and n != m}
    return edges


def _layer(module: str) -> str:
    """'edgeopt.pipeline.build' -> 'pipeline'; top-level modules ('edgeopt.errors') are their own layer."""
    return (module.split(".") + [""])[1]


def test_lower_layers_never_import_pipeline_or_cli() -> None:
    allowed = {"pipeline": {"pipeline", "cli", "__main__"}, "cli": {"cli", "__main__"}}
    edges = _imports(_modules())
    bad = sorted(f"{m} imports {t}" for m, ts in edges.items() for t in ts
                 if _layer(t) in allowed and _layer(m) not in allowed[_layer(t)])
    assert not bad, bad


def test_no_import_cycles() -> None:
    edges = _imports(_modules())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_checks_see_imports() -> None:
    """Guard against a checker that passes because it finds nothing."""
    edges = _imports(_modules())
    assert "edgeopt.pipeline.build" in edges["edgeopt.cli.commands.build"]
    assert "edgeopt.runtime.probe" in edges["edgeopt.runtime.registry"]
    assert "edgeopt.runtime.registry" in edges["edgeopt.runtime.probe_child"]


def test_test_modules_outside_packages_have_unique_names() -> None:
    """pytest imports a test file of a folder without __init__.py by its bare name: two such files with one
    basename make the whole run fail at collection ("import file mismatch"), as a merge once did."""
    tests = Path(__file__).resolve().parent
    bare = [p for p in tests.rglob("test_*.py") if not (p.parent / "__init__.py").exists()]
    names = [p.name for p in bare]
    assert len(bare) > 10
    assert sorted({n for n in names if names.count(n) > 1}) == []
