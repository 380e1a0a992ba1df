"""hpbench's imports form no circle, and ``import hpbench`` stays free of torch.

The graph has one node per module of hpbench (a package's ``__init__`` is the package's node) and
an edge for every import that runs when the module is imported: statements at module level, in
module-level ``if``/``try``/``with`` blocks and class bodies, but not in functions and not under
``if TYPE_CHECKING:``. Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``, so those
get edges too, except the packages that contain the importing module (already being imported).

The deferred graph adds the imports inside functions and ``importlib.import_module("literal")``
calls: a circle there is a layering knot (the registry importing the models that import it) even
when imports inside functions keep Python from tripping over it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "hpbench"
ROOT = PACKAGE.name


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_statements(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements that run when a module with this ``body`` is imported."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_time_statements(node.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    yield from _import_time_statements(child.body if isinstance(child, ast.ExceptHandler) else [child])


def _deferred_statements(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement or ``importlib.import_module("name")`` call, outside ``if TYPE_CHECKING:``."""
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield ast.Import(names=[ast.alias(name=node.args[0].value)])


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module name of ``from <node.module> import ...``, relative levels resolved."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _with_new_ancestors(target: str, importer: str, modules: set[str]) -> set[str]:
    """``target`` and the packages above it whose ``__init__`` importing it runs (not the importer's own)."""
    parts = target.split(".")
    own = {".".join(importer.split(".")[:i]) for i in range(1, importer.count(".") + 2)}
    names = {".".join(parts[:i]) for i in range(1, len(parts))} - own
    return {name for name in names | {target} if name in modules}


def import_graph(package: Path = PACKAGE, *, deferred: bool = False) -> dict[str, set[str]]:
    """Module -> the hpbench modules its import runs (with ``deferred``, also those its functions import),
    from an ``ast`` walk of every file under ``package``."""
    files = {_module_name(path, package): path for path in sorted(package.rglob("*.py"))}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        statements = _deferred_statements(tree) if deferred else _import_time_statements(tree.body)
        for node in statements:
            if isinstance(node, ast.Import):
                targets = {alias.name for alias in node.names}
            else:
                source = _resolve(module, path.name == "__init__.py", node)
                submodules = {f"{source}.{alias.name}" for alias in node.names} & modules
                attributes = any(f"{source}.{alias.name}" not in modules for alias in node.names)
                targets = submodules | ({source} if attributes else set())
            for target in targets:
                edges |= _with_new_ancestors(target, module, modules)
        graph[module] = edges - {module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, the shortest through its first node found; [] when none."""
    for start in sorted(graph):
        # Breadth-first from each module back to itself gives a shortest circle through it.
        parents: dict[str, str] = {}
        frontier = [start]
        while frontier:
            following = []
            for node in frontier:
                for target in sorted(graph.get(node, ())):
                    if target == start:
                        path = [node]
                        while path[-1] != start:
                            path.append(parents[path[-1]])
                        return [start, *reversed(path[:-1]), start]
                    if target not in parents and target != start:
                        parents[target] = node
                        following.append(target)
            frontier = following
    return []


def test_the_graph_sees_imports_of_every_form(tmp_path):
    package = tmp_path / ROOT
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import leaf\n")
    (package / "sub" / "leaf.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from hpbench import late\n"
        "def lazy():\n    import hpbench.late\n"
        "try:\n    from ..other import thing\nexcept ImportError:\n    import hpbench.late\n"
    )
    (package / "other.py").write_text("import hpbench.sub.leaf as leaf\n")
    (package / "late.py").write_text("")
    graph = import_graph(package)
    assert graph == {
        "hpbench": set(),
        "hpbench.sub": {"hpbench.sub.leaf"},
        "hpbench.sub.leaf": {"hpbench.other", "hpbench.late"},
        "hpbench.other": {"hpbench.sub", "hpbench.sub.leaf"},
        "hpbench.late": set(),
    }
    assert find_cycle(graph) == ["hpbench.other", "hpbench.sub.leaf", "hpbench.other"]


def test_deferred_imports_join_the_graph_only_when_asked(tmp_path):
    package = tmp_path / ROOT
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "registry.py").write_text(
        "import importlib\ndef load():\n    importlib.import_module('hpbench.models')\n"
    )
    (package / "models.py").write_text("from hpbench.registry import load\n")
    assert find_cycle(import_graph(package)) == []
    assert find_cycle(import_graph(package, deferred=True)) == ["hpbench.models", "hpbench.registry", "hpbench.models"]


def test_hpbench_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle == [], "import cycle: " + " -> ".join(cycle)


def test_hpbench_has_no_import_cycle_even_through_imports_in_functions():
    cycle = find_cycle(import_graph(deferred=True))
    assert cycle == [], "import cycle through imports in functions: " + " -> ".join(cycle)


def test_import_hpbench_does_not_import_torch():
    code = "import sys, hpbench; print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'numpy'}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
