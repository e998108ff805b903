"""The shape of the code: what may import what.

* Inside ``aiopod/builder`` no module imports a module that imports it back, directly or
  through others; imports of aiopod's own modules are at module level, never in a
  function body or under ``if TYPE_CHECKING:`` (where they would hide such a cycle).
* No module of ``aiopod`` imports another module's private name (a leading underscore).

The checks read the source with :mod:`ast`; each is also run on a small broken sample
so that it cannot pass by finding nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PACKAGE = Path(__file__).parents[1] / "aiopod"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(under: str) -> dict[str, ast.Module]:
    root = PACKAGE.parent / under.replace(".", "/")
    return {
        _module_name(path): ast.parse(path.read_text(), str(path))
        for path in sorted(root.rglob("*.py"))
    }


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    package = base[: len(base) - node.level]
    return ".".join([*package, *([node.module] if node.module else [])])


def _imports(module: str, tree: ast.Module, known: set[str]) -> Iterator[tuple[str, ast.stmt]]:
    """Every aiopod module *tree* imports (``from pkg import mod`` counts as ``pkg.mod``
    when that is a module), with the statement."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("aiopod"):
                    yield alias.name, node
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if not target.startswith("aiopod"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in known else target), node


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def hidden_imports(modules: dict[str, ast.Module]) -> list[str]:
    """Imports of aiopod modules in a function body or under ``if TYPE_CHECKING:``."""
    found = []
    for module, tree in modules.items():
        for node in ast.walk(tree):
            hiding = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or (
                isinstance(node, ast.If) and _is_type_checking(node)
            )
            if not hiding:
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    names = (
                        [a.name for a in inner.names]
                        if isinstance(inner, ast.Import)
                        else [_resolve(module, inner)]
                    )
                    if any(n.startswith("aiopod") for n in names):
                        found.append(f"{module}:{inner.lineno} imports {', '.join(names)}")
    return sorted(set(found))


def import_cycles(modules: dict[str, ast.Module]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    known = set(modules)
    graph = {
        m: sorted({t for t, _ in _imports(m, tree, known) if t in known and t != m})
        for m, tree in modules.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return groups


def private_name_imports(modules: dict[str, ast.Module]) -> list[str]:
    """``from <aiopod module> import _name`` where ``_name`` is not a module."""
    found = []
    for module, tree in modules.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _resolve(module, node)
            if not target.startswith("aiopod"):
                continue
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and f"{target}.{alias.name}" not in modules:
                    found.append(f"{module}:{node.lineno} imports {target}.{alias.name}")
    return found


def test_no_import_cycles_in_the_builder() -> None:
    assert import_cycles(_modules("aiopod.builder")) == []


def test_no_imports_hidden_in_functions_or_type_checking_in_the_builder() -> None:
    assert hidden_imports(_modules("aiopod.builder")) == []


def test_no_module_imports_a_private_name_of_another() -> None:
    assert private_name_imports(_modules("aiopod")) == []


def test_the_checks_see_the_builder() -> None:
    modules = _modules("aiopod.builder")
    assert len(modules) > 20
    known = set(modules)
    edges = sum(1 for m, t in modules.items() for _ in _imports(m, t, known))
    assert edges > 50


@pytest.mark.parametrize(
    ("sources", "check", "expected"),
    [
        (
            {
                "aiopod.x.a": "from aiopod.x.b import f\n",
                "aiopod.x.b": "from aiopod.x import c\n",
                "aiopod.x.c": "import aiopod.x.a\n",
            },
            import_cycles,
            [["aiopod.x.a", "aiopod.x.b", "aiopod.x.c"]],
        ),
        (
            {
                "aiopod.x.a": "def f():\n    from aiopod.x.b import g\n",
                "aiopod.x.b": "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from .a import f\n",
            },
            hidden_imports,
            ["aiopod.x.a:2 imports aiopod.x.b", "aiopod.x.b:3 imports aiopod.x.a"],
        ),
        (
            {"aiopod.x.a": "from aiopod.x.b import _hidden, public\n", "aiopod.x.b": ""},
            private_name_imports,
            ["aiopod.x.a:1 imports aiopod.x.b._hidden"],
        ),
    ],
)
def test_the_checks_catch_broken_samples(
    sources: dict[str, str],
    check: Callable[[dict[str, ast.Module]], list[Any]],
    expected: list[Any],
) -> None:
    modules = {name: ast.parse(text) for name, text in sources.items()}
    assert check(modules) == expected
