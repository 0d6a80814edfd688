"""The layers run one way: no import cycle between flordb's modules (imports inside functions
count; ``if TYPE_CHECKING:`` blocks do not), and nothing below the API imports ``flordb``
itself."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "flordb"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """The flordb modules ``path`` imports anywhere but under ``if TYPE_CHECKING:``."""
    out: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            out.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level == 0 and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    out.add(full if full in known else node.module)

    Visitor().visit(ast.parse(path.read_text()))
    return {m for m in out if m in known}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, set(mods)) - {name} for name, path in mods.items()}


def test_no_import_cycle(graph):
    assert cycles(graph) == []


def test_the_cycle_check_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_the_command_line_imports_the_api(graph):
    assert sorted(m for m, deps in graph.items() if "flordb" in deps) == ["flordb.cli"]


def test_replay_mode_does_not_reach_into_the_runtime(graph):
    assert "flordb.runtime" not in graph["flordb.replaying"]
    assert "flordb.runtime" not in graph["flordb.modes"]


def test_the_store_imports_nothing_above_it(graph):
    above = {"flordb", "flordb.runtime", "flordb.hindsight", "flordb.lifecycle", "flordb.ui",
             "flordb.cli"}
    for name, deps in graph.items():
        if name.startswith("flordb.store"):
            assert not {d for d in deps if d in above or d.startswith(
                ("flordb.hindsight.", "flordb.lifecycle.", "flordb.ui."))}, name


def test_only_the_api_holds_the_runtime(graph):
    """Lifecycle records, the web view and the command line get a session, a project root or
    a connection: none of them reaches for the process's runtime."""
    users = sorted(m for m, deps in graph.items() if "flordb.runtime" in deps)
    assert users == ["flordb"], users


def test_sql_lives_in_the_store():
    """No module outside store/ runs SQL of its own."""
    import re

    pattern = re.compile(r"\.(execute|executemany)\(\s*[f]?\"|read_sql_query\(")
    outside = sorted(name for name, path in modules().items()
                     if not name.startswith("flordb.store") and pattern.search(path.read_text()))
    assert outside == []


def test_the_thread_session_is_a_session():
    """The API's session has every method lifecycle records call (checked by mypy too)."""
    from flordb.lifecycle.session import Session
    from flordb.runtime import SESSION

    wanted = {n for n in vars(Session) if not n.startswith("_")}
    assert wanted and all(callable(getattr(SESSION, n)) for n in wanted)


def _code_strings(tree: ast.AST) -> list[ast.Constant]:
    """String constants of a module that are not docstrings."""
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)}
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docs]


def test_environment_variables_are_named_only_in_settings():
    """Every ``FLORDB_*`` name the code uses comes from ``settings.py`` (docstrings may name
    them)."""
    import re

    variable = re.compile(r"FLORDB_[A-Z]")
    found = sorted(f"{name}:{c.lineno}" for name, path in modules().items()
                   if name != "flordb.settings"
                   for c in _code_strings(ast.parse(path.read_text())) if variable.search(c.value))
    assert found == []


def test_sqlite_is_imported_only_by_the_store():
    """Above the store, code gets a store handle, its entities and its errors, never SQLite."""
    found = sorted(name for name, path in modules().items()
                   if not name.startswith("flordb.store")
                   and "sqlite3" in imports_of(ast.parse(path.read_text())))
    assert found == []


def imports_of(tree: ast.AST) -> set[str]:
    """Top-level module names a module imports (under ``TYPE_CHECKING`` too)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_sql_strings_live_in_the_store():
    """No string outside store/ is a SQL statement (the web view's and CLI's examples are in
    help texts, which start otherwise)."""
    import re

    statement = re.compile(r"\s*(SELECT .+ FROM|INSERT (OR \w+ )?INTO|UPDATE \w+ SET|DELETE FROM"
                           r"|CREATE (TABLE|INDEX|VIEW)|DROP (TABLE|INDEX|VIEW)|ALTER TABLE"
                           r"|PRAGMA \w+)\b", re.S)
    found = sorted(f"{name}:{c.lineno}" for name, path in modules().items()
                   if not name.startswith("flordb.store")
                   for c in _code_strings(ast.parse(path.read_text())) if statement.match(c.value))
    assert found == []


BUILTIN_ERRORS = {
    n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)
    # the protocols that name these: exits, iteration, a module's __getattr__, invariants
    and n not in {"SystemExit", "KeyboardInterrupt", "StopIteration", "NotImplementedError",
                  "AssertionError", "AttributeError"}}


def test_errors_raised_on_purpose_are_flordb_errors():
    """``raise ValueError(...)`` and friends in flordb are bugs waiting to be reported as
    tracebacks: what flordb raises on purpose is a :class:`FlorError` (keeping a builtin base)."""
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                    and isinstance(node.exc.func, ast.Name) and node.exc.func.id in BUILTIN_ERRORS:
                found.append(f"{name}:{node.lineno} {node.exc.func.id}")
    assert found == []


def test_every_error_is_under_one_of_four_groups():
    from flordb import errors

    groups = (errors.StoreError, errors.InputError, errors.HindsightError,
              errors.LifecycleError)
    own = [v for v in vars(errors).values() if isinstance(v, type)
           and issubclass(v, errors.FlorError) and v is not errors.FlorError and v not in groups]
    assert own and all(issubclass(e, groups) for e in own)
    import flordb

    assert all(hasattr(flordb, g.__name__) for g in (errors.FlorError, *groups))
