"""The shape the code keeps: a thin CLI and short functions (design/style.md, issue 14)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "hpbench"
MAX_FUNCTION_LINES = 80
MAX_CLI_LINES = 400


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def test_no_function_is_over_80_lines():
    long = [f"{path.relative_to(PACKAGE.parent)}:{line} {name} ({length} lines)"
            for path in sorted(PACKAGE.rglob("*.py")) for name, line, length in _functions(path)
            if length > MAX_FUNCTION_LINES]
    assert long == []


def test_the_cli_is_thin():
    lines = len((PACKAGE / "cli.py").read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_CLI_LINES, f"cli.py has {lines} lines"
