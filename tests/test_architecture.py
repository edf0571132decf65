"""The package's import graph, built from the source: no cycles, and layers import downward only
(the table is ``robustbench_face/_layers.py``, drawn in ``docs/architecture.md``). Also the
size rules of the house: no module past 400 lines, no function past 60."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from robustbench_face._layers import layer_of

PKG = Path(__file__).resolve().parents[1] / "robustbench_face"


def modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        name = ".".join(("robustbench_face", *p.relative_to(PKG).with_suffix("").parts))
        out[name.removesuffix(".__init__")] = p
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of the package that ``name`` imports anywhere in its source (functions too)."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            cands = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            cands = [a.name for a in node.names]
        else:
            continue
        for c in cands:  # the deepest module named (``from .x import y``: y may be a module)
            if c in known and c != name:
                found.add(c)
    # a package's __init__ importing its own submodules is how packages gather their parts
    if path.name == "__init__.py":
        found = {m for m in found if not m.startswith(name + ".")}
    return found


GRAPH = {m: imports(m, p, set(modules())) for m, p in modules().items()}


def _sub(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycles():
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v); on.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(" <-> ".join(sorted(comp)))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_layers_import_downward_only():
    bad = []
    for m, deps in GRAPH.items():
        if m == "robustbench_face":
            continue  # the facade re-exports the public API
        for d in deps:
            if d == "robustbench_face":
                bad.append(f"{m} imports the package root (import from the module that defines it)")
            elif _sub(d) != _sub(m) and layer_of(d) >= layer_of(m):
                bad.append(f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})")
    assert not bad, "\n".join(sorted(bad))


def test_every_module_has_a_layer():
    for m in GRAPH:
        if m != "robustbench_face":
            layer_of(m)  # raises with the module's name


# Exceptions to the size rules, each with its reason (say it in the closing note too).
LONG_OK: dict[str, str] = {}


def test_module_and_function_sizes():
    too_long = []
    for m, p in modules().items():
        src = p.read_text()
        if len(src.splitlines()) > 400 and m not in LONG_OK:
            too_long.append(f"{m}: {len(src.splitlines())} lines")
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 60 and f"{m}.{node.name}" not in LONG_OK:
                    too_long.append(f"{m}.{node.name}: {n} lines")
    assert not too_long, "\n".join(too_long)


@pytest.mark.parametrize("doc", ["docs/architecture.md"])
def test_architecture_doc_lists_every_layer(doc):
    from robustbench_face._layers import LAYERS

    text = (PKG.parent / doc).read_text()
    for names in LAYERS:
        for n in names:
            assert f"`{n}`" in text, f"{doc} does not mention layer member `{n}`"
