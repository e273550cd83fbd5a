"""The package's layout, read from its own imports with ``ast``: no cycle, layers point down,
no private name crosses a sub-package boundary, and every exception lives in ``errors.py``.

Every import counts: module level, inside functions, under ``TYPE_CHECKING``, and the lazy
``_LAZY`` tables of the package ``__init__`` files.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "phi3industry"
ROOT_NAME = "phi3industry"

#: Sub-packages by layer: a module may import from its own sub-package, the shared root
#: modules (errors, models, strategies, qa, _config...) and lower layers only.
LAYERS = {
    "retrieval": 1,
    "generation": 1,
    "pipeline": 2,
    "tuning": 3,
    "serving": 4,
    "evaluation": 4,
    "demo": 5,
    "cli": 6,
    "__main__": 7,
}
#: Imports of the package's own modules placed inside functions, and why. Everything else is
#: imported at module level, where it can be seen (inside functions: heavy third-party only).
FUNCTION_LEVEL_ALLOWED = {
    # each CLI command loads the sub-package it drives when it runs: `--help` stays fast
    ("cli", None),
    # the LangChain adapter pulls in langchain, which ingest and search do not need
    ("phi3industry.retrieval.index", "phi3industry.retrieval.langchain"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _group(module: str) -> str:
    """The sub-package a module belongs to ("root" for the shared top-level modules)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "package"  # phi3industry/__init__.py re-exports everything
    if (PACKAGE / parts[1]).is_dir() or parts[1] in ("demo", "__main__"):
        return parts[1]
    return "root"


def _resolve(module: str, name: str | None) -> str | None:
    """The own module an import names (``from pkg import submodule`` -> the submodule)."""
    if name is not None and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    return module if module in MODULES else None


def _lazy_table(tree: ast.Module) -> list[str]:
    for node in tree.body:
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == "_LAZY":
            value = node.value  # type: ignore[attr-defined]
            return [v.value for v in value.values if isinstance(v, ast.Constant)]
    return []


def _imports(module: str) -> Iterator[tuple[str, str | None, bool]]:
    """(imported own module, imported name or None, inside a function?) for ``module``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    functions = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
        for n in ast.walk(f)
    }
    for node in ast.walk(tree):
        nested = id(node) in functions
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != ROOT_NAME:
                continue
            for alias in node.names:
                target = _resolve(node.module, alias.name)
                if target is not None:
                    yield target, alias.name if target == node.module else None, nested
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == ROOT_NAME and alias.name in MODULES:
                    yield alias.name, None, nested
    for target in _lazy_table(tree):
        yield target, None, False


GRAPH = {m: sorted({t for t, _, _ in _imports(m) if t != m}) for m in MODULES}


def test_the_graph_was_read() -> None:
    assert len(MODULES) > 40
    edges = sum(len(v) for v in GRAPH.values())
    assert edges > 100, edges
    assert "phi3industry.retrieval.index" in GRAPH["phi3industry.pipeline.pipeline"]


def test_no_import_cycle() -> None:
    """Tarjan's strongly connected components: every one must be a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    assert cycles == []


def test_layers_point_down() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        group = _group(module)
        for target in targets:
            tgroup = _group(target)
            if tgroup in ("root", group) or group == "package":
                continue
            if group == "root":
                wrong.append(f"{module} -> {target} (shared root modules import no sub-package)")
            elif tgroup == "package" or LAYERS[tgroup] >= LAYERS[group]:
                wrong.append(f"{module} -> {target} ({group} may not import {tgroup})")
    assert wrong == []


def test_no_private_name_crosses_a_sub_package() -> None:
    crossings = []
    for module in MODULES:
        group = _group(module)
        for target, name, _ in _imports(module):
            tgroup = _group(target)
            if tgroup == group:
                continue
            private_module = any(
                p.startswith("_") for p in target.split(".")[2:] if tgroup != "root"
            )
            private_name = name is not None and name.startswith("_") and not name.startswith("__")
            if private_module or private_name:
                crossings.append(f"{module} imports {target}{'.' + name if name else ''}")
    assert crossings == []


def test_own_modules_are_imported_at_module_level() -> None:
    hidden = []
    for module in MODULES:
        for target, _, nested in _imports(module):
            allowed = (_group(module), None) in FUNCTION_LEVEL_ALLOWED or (
                module,
                target,
            ) in FUNCTION_LEVEL_ALLOWED
            if nested and not allowed:
                hidden.append(f"{module} -> {target}")
    assert hidden == []


def test_every_exception_class_lives_in_errors() -> None:
    elsewhere = []
    for module, path in MODULES.items():
        if module == "phi3industry.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                if any(b.endswith(("Error", "Exception")) for b in bases):
                    elsewhere.append(f"{module}.{node.name}")
    assert elsewhere == []


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_sub_package_exists(name: str) -> None:
    assert (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()
