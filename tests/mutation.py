"""A small, dependency-free mutation tester for hpbench's pure modules (a dev tool, not a test).

    python tests/mutation.py                       # metrics.py, predictions.py, data/camera.py, data/crop.py
    python tests/mutation.py hpbench/metrics.py    # one module
    python tests/mutation.py --list hpbench/data/camera.py   # print the mutants, run nothing

For each module it parses the source with :mod:`ast`, makes one mutant per mutation point (a flipped
comparison, ``+``/``-`` or ``*``/``/`` swapped, a numeric constant changed, ``and``/``or`` swapped,
``not``/unary minus/``~`` dropped, ``True``/``False`` swapped, a return value replaced by ``None``, a
statement or ``with`` block removed, a slice bound moved) and runs the module's tests (``TESTS``) against it
with ``pytest -x``. A mutant is *killed* when the tests fail or time out, and *survives* when they pass.
Docstrings, strings (messages), f-strings, type annotations and the arguments of ``raise`` are not
mutated. Mutants that cannot change behaviour are listed in ``EQUIVALENT`` with a reason and left out of
the score.

Isolation: ``hpbench/`` is copied once into a temporary folder; each mutant is written over its module
there and pytest runs with that folder as the current directory and first on ``PYTHONPATH``, so it
imports the copy, not the editable install (checked at start: a sabotaged copy must fail the tests and
``hpbench.__file__`` must point into the copy). The working tree is never written.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# module -> the test files that name it (run in this order; -x stops at the first failure)
TESTS: dict[str, list[str]] = {
    "hpbench/metrics.py": ["tests/test_metrics.py"],
    "hpbench/predictions.py": ["tests/test_predictions.py", "tests/test_properties.py"],
    "hpbench/data/camera.py": ["tests/test_camera.py", "tests/test_properties.py"],
    "hpbench/jointtable.py": ["tests/test_predictions.py", "tests/test_properties.py"],
    "hpbench/data/crop.py": ["tests/test_crop_transforms.py", "tests/test_data_crop.py", "tests/test_properties.py"],
}
DEFAULT_MODULES = ["hpbench/metrics.py", "hpbench/predictions.py", "hpbench/data/camera.py", "hpbench/data/crop.py"]

# (module, enclosing function, change, occurrence) -> why the mutant cannot change observable behaviour.
# The occurrence counts the earlier mutants with the same function and change (0 for the first). No line
# numbers: edits elsewhere in a module keep an entry valid (`--list` prints each mutant's function and,
# after '#', its occurrence when not 0; a stale entry is warned about).
EQUIVALENT: dict[tuple[str, str, str, int], str] = {
    ("hpbench/metrics.py", "per_joint_error_mm",
     "drop `with np.errstate(invalid='ignore', divide='ignore')` (keep its body)", 0):
        "per_joint_error_mm divides by np.maximum(counts, 1) >= 1: no division by zero to silence",
    ("hpbench/metrics.py", "per_joint_error_mm", "constant `1` -> `0`", 0):
        "np.maximum(counts, 0) gives 0 / 0 = nan only where counts == 0, where np.where picks nan anyway "
        "(under the errstate that silences it)",
    ("hpbench/predictions.py", "write_prediction_file", "`True` -> `False`", 0):
        "zip(..., strict=False): names and lines have one length, checked by the ValueError a few lines above",
    ("hpbench/predictions.py", "write_prediction_file", "constant `1` -> `2`", 1):
        "joints.reshape(n, -2): numpy (2.x) takes any negative size as the one to infer, like -1",
    ("hpbench/jointtable.py", "_is_number", "return None instead of `False`", 0):
        "_is_number's callers only test its truth, and None is false like False",
    ("hpbench/jointtable.py", "_Rows.parse_fast", "`False` -> `True`", 0):
        "pandas dropping blank lines changes the row count, which the fast path's shape check sends to the "
        "careful pass: the same result",
    ("hpbench/jointtable.py", "_Rows.parse_checked", "`True` -> `False`", 0):
        "zip(self.lines, self.numbers.tolist(), strict=False): both come from one list of numbered lines",
    ("hpbench/data/camera.py", "Camera.y_up", "`<` -> `<=` in `self.fy < 0`", 0):
        "differs only for fy == 0, which is no camera (nothing projects); y_up is the sign of fy",
    ("hpbench/data/crop.py", "CropTransform.to_crop", "constant `2` -> `3`", 0):
        "uvd[..., :3] instead of [..., :2]: _apply reads only columns 0 and 1",
    ("hpbench/data/crop.py", "CropTransform.to_image", "constant `2` -> `3`", 0):
        "crop_uvd[..., :3] instead of [..., :2]: _apply reads only columns 0 and 1",
    ("hpbench/data/crop.py", "normalize_depth", "`>` -> `>=` in `normalized > 1.0`", 0):
        "differs only at exactly 1.0, which np.where replaces by 1.0: the same value",
    ("hpbench/data/crop.py", "crop_depth", "constant `1` -> `2`", 0):
        "cols.reshape(batch + (-2,)): numpy (2.x) takes any negative size as the one to infer, like -1",
    ("hpbench/data/crop.py", "crop_depth", "constant `1` -> `2`", 1):
        "rows.reshape(batch + (-2,)): numpy (2.x) takes any negative size as the one to infer, like -1",
    ("hpbench/data/crop.py", "crop_depth", "constant `3` -> `4`", 1):
        "center_uvd[..., 2:4] is center_uvd[..., 2:3]: centres have 3 columns",
    ("hpbench/data/crop.py", "augment_crops", "constant `1` -> `2`", 2):
        "cols.reshape(n, -2): numpy (2.x) takes any negative size as the one to infer, like -1",
    ("hpbench/data/crop.py", "augment_crops", "constant `1` -> `2`", 3):
        "rows.reshape(n, -2): numpy (2.x) takes any negative size as the one to infer, like -1",
    ("hpbench/data/crop.py", "augment_crops", "constant `1` -> `2`", 4):
        "crops.reshape(n, -2): numpy (2.x) takes any negative size as the one to infer, like -1",
    ("hpbench/data/crop.py", "augment_crops", "drop the unary operator of `-1`", 4):
        "np.take_along_axis(..., axis=1) on (n, S * S) arrays, always 2-D here: axis 1 is axis -1",
    ("hpbench/data/crop.py", "augment_crops", "constant `3` -> `4`", 0):
        "params.shift_mm[:, 2:4] is shift_mm[:, 2:3]: shifts have 3 columns (x, y, z)",
    ("hpbench/data/crop.py", "augment_crops", "`>` -> `>=` in `renorm > 1.0`", 0):
        "differs only at exactly 1.0, which np.where replaces by 1.0 (np.maximum(1.0, -1.0) is 1.0 too)",
    ("hpbench/data/crop.py", "augment_crops", "`<` -> `<=` in `noise < params.dropout[:, None]`", 0):
        "differs only when a uniform draw equals the dropout exactly (probability about 2**-53 per pixel)",
    ("hpbench/data/crop.py", "augment_crops", "constant `3` -> `4`", 1):
        "transform.matrix[:, :, 2:4] is matrix[:, :, 2:3]: affine matrices have 3 columns",
    ("hpbench/data/crop.py", "augment_crops", "drop the unary operator of `-1`", 6):
        "np.concatenate([centre_uv, centre_d[:, None]], 1) on (n, 2) and (n, 1) arrays: axis 1 is axis -1",
}


@dataclass(frozen=True)
class Mutant:
    index: int  # position among this module's mutation points (stable for one source)
    line: int
    change: str
    scope: str = "<module>"  # the enclosing function's qualified name ("Class.method"), "<module>" outside any
    occurrence: int = 0  # how many earlier mutants of this module share (scope, change)

    def key(self, module: str) -> tuple[str, str, str, int]:
        """The ``EQUIVALENT`` key: unlike the line, it survives edits elsewhere in the module."""
        return (module, self.scope, self.change, self.occurrence)


_CMP_SWAPS: dict[type, list[type]] = {
    ast.Lt: [ast.LtE, ast.GtE],
    ast.LtE: [ast.Lt, ast.Gt],
    ast.Gt: [ast.GtE, ast.LtE],
    ast.GtE: [ast.Gt, ast.Lt],
    ast.Eq: [ast.NotEq],
    ast.NotEq: [ast.Eq],
    ast.Is: [ast.IsNot],
    ast.IsNot: [ast.Is],
    ast.In: [ast.NotIn],
    ast.NotIn: [ast.In],
}
_BIN_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
}
_SYMBOL = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is",
    ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.Add: "+", ast.Sub: "-", ast.Mult: "*",
    ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**", ast.And: "and", ast.Or: "or",
}


def _numeric_replacements(value: int | float) -> list[int | float]:
    if isinstance(value, bool):
        return []
    if value == 0:
        return [type(value)(1)]
    if value == 1:
        return [type(value)(0), type(value)(2)]
    return [value + 1]


def _short(node: ast.AST, limit: int = 60) -> str:
    text = ast.unparse(node).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Mutator:
    """Walks a module in a fixed order; ``points`` lists every mutant, ``apply(tree, i)`` makes mutant i."""

    def __init__(self) -> None:
        self.points: list[tuple[int, str, str]] = []
        self._scope: list[str] = []
        self._target: int | None = None
        self._count = 0
        self._done = False

    # -- bookkeeping ------------------------------------------------------------------------------
    def _offer(self, line: int, change: str) -> bool:
        """Register a mutation point; True when it is the one to apply."""
        index = self._count
        self._count += 1
        if self._target is None:
            self.points.append((line, ".".join(self._scope) or "<module>", change))
            return False
        if index == self._target:
            self._done = True
            return True
        return False

    def collect(self, tree: ast.Module) -> list[Mutant]:
        self._target, self._count, self.points, self._scope = None, 0, [], []
        self._visit_body(tree.body, in_function=False)
        seen: dict[tuple[str, str], int] = {}
        mutants = []
        for i, (line, scope, change) in enumerate(self.points):
            occurrence = seen.get((scope, change), 0)
            seen[(scope, change)] = occurrence + 1
            mutants.append(Mutant(i, line, change, scope, occurrence))
        return mutants

    def apply(self, tree: ast.Module, index: int) -> ast.Module:
        self._target, self._count, self._done = index, 0, False
        self._visit_body(tree.body, in_function=False)
        if not self._done:
            raise RuntimeError(f"mutant {index} not found")
        return ast.fix_missing_locations(tree)

    # -- statements ---------------------------------------------------------------------------------
    def _visit_body(self, body: list[ast.stmt], *, in_function: bool) -> None:
        for position in range(len(body)):
            stmt = body[position]
            if _is_docstring(stmt) and position == 0:
                continue
            if in_function and self._removable(stmt):
                if self._offer(stmt.lineno, f"remove `{_short(stmt)}`"):
                    body[position] = ast.Pass()
                    ast.copy_location(body[position], stmt)
                    continue
            if isinstance(stmt, ast.With) and in_function:
                if self._offer(stmt.lineno, f"drop `with {_short(stmt.items[0].context_expr)}` (keep its body)"):
                    body[position:position + 1] = stmt.body
                    continue
            self._visit_stmt(stmt, in_function=in_function)
        if not body:
            body.append(ast.Pass())

    @staticmethod
    def _removable(stmt: ast.stmt) -> bool:
        if isinstance(stmt, (ast.Raise, ast.If, ast.For, ast.AugAssign)):
            return True
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            return True
        if isinstance(stmt, ast.Assign):
            return True
        return False

    def _visit_stmt(self, stmt: ast.stmt, *, in_function: bool) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._scope.append(stmt.name)
            try:
                for default in stmt.args.defaults + [d for d in stmt.args.kw_defaults if d is not None]:
                    self._visit_expr(default)
                self._visit_body(stmt.body, in_function=True)
            finally:
                self._scope.pop()
            return
        if isinstance(stmt, ast.ClassDef):
            self._scope.append(stmt.name)
            try:
                self._visit_body(stmt.body, in_function=False)
            finally:
                self._scope.pop()
            return
        if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Pass, ast.Global, ast.Nonlocal)):
            return
        if isinstance(stmt, ast.AnnAssign):  # the annotation is not code
            if stmt.value is not None:
                self._visit_expr(stmt.value)
            return
        if isinstance(stmt, ast.Raise):  # the exception's message is not behaviour
            return
        if isinstance(stmt, ast.Return):
            if stmt.value is not None and not (isinstance(stmt.value, ast.Constant) and stmt.value.value is None):
                if self._offer(stmt.lineno, f"return None instead of `{_short(stmt.value)}`"):
                    stmt.value = ast.Constant(None)
                    return
                self._visit_expr(stmt.value)
            return
        if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) and t.id == "__all__" for t in stmt.targets):
            return
        for field in ("test", "iter", "value"):
            child = getattr(stmt, field, None)
            if isinstance(child, ast.expr):
                self._visit_expr(child)
        if isinstance(stmt, ast.With):
            for item in stmt.items:
                self._visit_expr(item.context_expr)
        for field in ("body", "orelse", "finalbody"):
            child = getattr(stmt, field, None)
            if isinstance(child, list) and child and isinstance(child[0], ast.stmt):
                self._visit_body(child, in_function=in_function)
        if isinstance(stmt, ast.Try):
            for handler in stmt.handlers:
                self._visit_body(handler.body, in_function=in_function)

    # -- expressions --------------------------------------------------------------------------------
    def _visit_expr(self, node: ast.expr) -> None:
        """Offer the mutants of ``node`` itself, then recurse (in a fixed order)."""
        if self._done:
            return
        if isinstance(node, ast.JoinedStr):
            return
        if isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                for new in _CMP_SWAPS.get(type(op), []):
                    if self._offer(node.lineno, f"`{_SYMBOL[type(op)]}` -> `{_SYMBOL[new]}` in `{_short(node)}`"):
                        node.ops[k] = new()
                        return
        elif isinstance(node, ast.BinOp) and type(node.op) in _BIN_SWAPS:
            new = _BIN_SWAPS[type(node.op)]
            if self._offer(node.lineno, f"`{_SYMBOL[type(node.op)]}` -> `{_SYMBOL[new]}` in `{_short(node)}`"):
                node.op = new()
                return
        elif isinstance(node, ast.BoolOp):
            new = ast.Or if isinstance(node.op, ast.And) else ast.And
            if self._offer(node.lineno, f"`{_SYMBOL[type(node.op)]}` -> `{_SYMBOL[new]}` in `{_short(node)}`"):
                node.op = new()
                return
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.Invert)):
            if self._offer(node.lineno, f"drop the unary operator of `{_short(node)}`"):
                _replace_in_parent(node, node.operand)
                return
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                if self._offer(node.lineno, f"`{node.value}` -> `{not node.value}`"):
                    node.value = not node.value
                return
            if isinstance(node.value, (int, float)):
                for new in _numeric_replacements(node.value):
                    if self._offer(node.lineno, f"constant `{node.value!r}` -> `{new!r}`"):
                        node.value = new
                        return
            return
        elif isinstance(node, ast.Slice):
            for field in ("lower", "upper"):
                bound = getattr(node, field)
                if isinstance(bound, ast.Constant) and isinstance(bound.value, int) and not isinstance(bound.value, bool):
                    if self._offer(node.lineno, f"slice {field} `{bound.value}` -> `{bound.value - 1}`"):
                        bound.value -= 1
                        return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self._visit_expr(child)
            elif isinstance(child, ast.keyword):
                self._visit_expr(child.value)
            elif isinstance(child, ast.comprehension):
                self._visit_expr(child.iter)
                for condition in child.ifs:
                    self._visit_expr(condition)
            if self._done:
                return


_PARENTS: dict[int, tuple[ast.AST, str, int | None]] = {}


def _index_parents(tree: ast.AST) -> None:
    _PARENTS.clear()
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if isinstance(value, ast.AST):
                _PARENTS[id(value)] = (parent, field, None)
            elif isinstance(value, list):
                for k, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        _PARENTS[id(item)] = (parent, field, k)


def _replace_in_parent(node: ast.AST, new: ast.AST) -> None:
    parent, field, k = _PARENTS[id(node)]
    if k is None:
        setattr(parent, field, new)
    else:
        getattr(parent, field)[k] = new


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def mutants_of(source: str) -> list[Mutant]:
    return _Mutator().collect(ast.parse(source))


def mutated_source(source: str, index: int) -> str:
    tree = ast.parse(source)
    _index_parents(tree)
    return ast.unparse(_Mutator().apply(tree, index)) + "\n"


# --------------------------------------------------------------------------------------------- running


class Runner:
    def __init__(self, workdir: Path, timeout_s: float, conftest: bool) -> None:
        self.workdir = workdir
        self.timeout_s = timeout_s
        self.conftest = conftest
        shutil.copytree(ROOT / "hpbench", workdir / "hpbench", ignore=shutil.ignore_patterns("__pycache__"))
        self.env = dict(os.environ, PYTHONPATH=str(workdir), PYTHONDONTWRITEBYTECODE="1",
                        HPBENCH_EVAL_DIR=os.environ.get("HPBENCH_EVAL_DIR", str(ROOT.parent / "shared" / "handpose-eval")))
        if not Path(self.env["HPBENCH_EVAL_DIR"]).is_dir():
            del self.env["HPBENCH_EVAL_DIR"]

    def pytest(self, tests: list[str]) -> tuple[str, float]:
        """'passed', 'failed' or 'timeout', and the seconds taken."""
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                   "-p", "no:xdist", "-p", "no:randomly", "--tb=no", "--no-header"]
        if not self.conftest:
            command.append("--noconftest")
        command += [str(ROOT / t) for t in tests if (ROOT / t).exists()]
        start = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=self.workdir, env=self.env, capture_output=True, text=True,
                                  timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            return "timeout", time.perf_counter() - start
        seconds = time.perf_counter() - start
        if done.returncode == 0:
            return "passed", seconds
        if done.returncode in (1, 2):  # 2: the mutant broke collection (the module fails on import)
            return "failed", seconds
        # 3-5: internal error, usage error, nothing collected: the run itself is broken
        return f"error {done.returncode}: {(done.stdout + done.stderr).strip().splitlines()[-1:]}", seconds

    def check_isolation(self, module: str, tests: list[str]) -> None:
        """The tests must import the copy: its path is the copy's, and a sabotaged copy fails them."""
        dotted = module.removesuffix(".py").replace("/", ".")
        shown = subprocess.run([sys.executable, "-c", f"import {dotted} as m; print(m.__file__)"], cwd=self.workdir,
                               env=self.env, capture_output=True, text=True, check=True).stdout.strip()
        if not Path(shown).resolve().is_relative_to(self.workdir.resolve()):
            raise SystemExit(f"isolation broken: {dotted} imports from {shown}, not from {self.workdir}")
        target = self.workdir / module
        original = target.read_text()
        target.write_text("raise ImportError('mutation.py sabotage check')\n" + original)
        try:
            outcome, _ = self.pytest(tests)
        finally:
            target.write_text(original)
        if outcome == "passed":
            raise SystemExit(f"isolation broken: a sabotaged copy of {module} passed {tests}")
        outcome, seconds = self.pytest(tests)
        if outcome != "passed":
            raise SystemExit(f"the unmutated {module} does not pass {tests}: {outcome}")
        print(f"{module}: imports {shown}; a sabotaged copy fails; baseline passes in {seconds:.1f} s", flush=True)


def _warn_stale(module: str, mutants: list[Mutant]) -> None:
    """After an edit of the expression (or a rename of its function) an EQUIVALENT entry may point at nothing."""
    keys = {m.key(module) for m in mutants}
    for key in EQUIVALENT:
        if key[0] == module and key not in keys:
            print(f"WARNING: stale EQUIVALENT entry (no such mutant; see --list): {key}", flush=True)


def run_module(runner: Runner, module: str, tests: list[str]) -> tuple[int, int, list[str], int]:
    source = (ROOT / module).read_text()
    target = runner.workdir / module
    runner.check_isolation(module, tests)
    mutants = mutants_of(source)
    _warn_stale(module, mutants)
    killed, survivors, equivalent = 0, [], 0
    try:
        for mutant in mutants:
            if mutant.key(module) in EQUIVALENT:
                equivalent += 1
                continue
            target.write_text(mutated_source(source, mutant.index))
            outcome, _ = runner.pytest(tests)
            if outcome.startswith("error"):
                raise SystemExit(f"{module}:{mutant.line}: {mutant.change}: pytest could not run: {outcome}")
            if outcome == "passed":
                survivors.append(f"{module}:{mutant.line}: {mutant.change}")
                print(f"  SURVIVED {module}:{mutant.line}: {mutant.change}  key: {mutant.key(module)!r}", flush=True)
            else:
                killed += 1
    finally:
        target.write_text(source)
    return killed, len(mutants) - equivalent, survivors, equivalent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", default=DEFAULT_MODULES, help="modules (paths from the repo root)")
    parser.add_argument("--list", action="store_true", help="print the mutants and run nothing")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per mutant's test run (default 60)")
    parser.add_argument("--conftest", action="store_true", help="load tests/conftest.py (imports torch: slower)")
    args = parser.parse_args(argv)
    for module in args.modules:
        if module not in TESTS:
            parser.error(f"no tests mapped for {module}; known: {', '.join(TESTS)}")
    if args.list:
        for module in args.modules:
            mutants = mutants_of((ROOT / module).read_text())
            _warn_stale(module, mutants)
            for mutant in mutants:
                mark = "  (equivalent)" if mutant.key(module) in EQUIVALENT else ""
                where = mutant.scope + (f" #{mutant.occurrence}" if mutant.occurrence else "")
                print(f"{module}:{mutant.line}: [{where}] {mutant.change}{mark}")
        return 0
    start = time.perf_counter()
    scores = {}
    with tempfile.TemporaryDirectory(prefix="hpbench-mutation-") as work:
        runner = Runner(Path(work), args.timeout, args.conftest)
        for module in args.modules:
            scores[module] = run_module(runner, module, TESTS[module])
    print(f"\nmutation score ({time.perf_counter() - start:.0f} s):")
    failed = False
    for module, (killed, total, survivors, equivalent) in scores.items():
        share = killed / total if total else 1.0
        failed |= share < 0.9
        print(f"  {module}: {killed}/{total} killed ({100 * share:.1f} %), {len(survivors)} survived, "
              f"{equivalent} equivalent left out")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
