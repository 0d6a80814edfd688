"""Propagation on real git histories that nobody here wrote: right / reported / wrong.

For each (repository, script) of the corpus, every distinct past version of the script is read
from a local mirror of the repository (all refs, so FlorDB's ``flor.shadow*`` branches count).
Into the newest version, statements are inserted at five structural positions:

- ``before_loops``: right before the training loop (the outermost loop that runs another
  loop, directly or through a function of the file);
- ``epoch_head``: first in the training loop's body;
- ``inner_head``: first in the inner loop's body;
- ``after_inner``: right after the inner loop;
- ``after_loops``: right after the training loop.

Each statement is ``flor.log("p_<position>", <a variable bound just before it>)`` where such a
variable exists (so the def-use check is exercised), else a constant. Each is propagated into
every older version on its own and classified by rules that do not use the propagation engine:

- **right**: the old file is otherwise byte-for-byte intact, and the statement sits at the same
  structural position of the old version (found by the same rules), and a statement at a
  loop's head that logs the loop's target logs the old loop's name in that role (the first
  name of its target: an ``enumerate`` index stays an index), lifted over wrappers: e.g.
  ``after_inner`` is right when the statement before it is, or contains, the old inner loop,
  in the old training loop's body (or the function that holds the inner loop);
- **reported**: propagation declined with a reason, though the old version has the loops the
  position needs; **no such place** when it does not (no training loop, or no inner loop for
  the inner positions), or never binds the variable the statement reads: declining is then
  the right answer;
- **wrong**: placed anywhere else (a silent misplacement).

Run: ``python benchmarks/bench_propagate_real.py [--mirrors DIR] [--limit N] [-v]``. The
mirrors are bare git directories named ``owner+name/repo`` (as the session's ``fetch`` tool
leaves them); missing ones are listed and skipped. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import libcst as cst
import libcst.metadata

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flordb.errors import ParseError  # noqa: E402
from flordb.hindsight.propagate import Propagator  # noqa: E402

CORPUS = [
    ("rlnsanz/ml_tutorial", "train.py"),
    ("rlnsanz/xp-BERT", "train.py"),
    ("rlnsanz/xp-gpt2", "train.py"),
    ("rlnsanz/xp-resnet152", "train.py"),
    ("rlnsanz/xp-layoutlmv3", "train.py"),
    ("rlnsanz/xp-DETR", "train.py"),
    ("rlnsanz/xp-tapas-base", "train.py"),
    ("pytorch/examples", "mnist/main.py"),
    ("pytorch/examples", "imagenet/main.py"),
    ("pytorch/examples", "word_language_model/main.py"),
    ("pytorch/examples", "dcgan/main.py"),
    ("pytorch/examples", "vae/main.py"),
    ("pytorch/examples", "snli/train.py"),
    ("pytorch/examples", "reinforcement_learning/actor_critic.py"),
    ("pytorch/examples", "time_sequence_prediction/train.py"),
]
POSITIONS = ("before_loops", "epoch_head", "inner_head", "after_inner", "after_loops")
VERDICTS = ("right", "reported", "absent", "wrong")
LOOPS = (cst.For, cst.While)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo), *args], check=True,
                          capture_output=True, text=True).stdout


def versions(repo: Path, path: str) -> list[str]:
    """Distinct versions of ``path`` over all refs, oldest first."""
    seen: dict[str, int] = {}
    log = git(repo, "log", "--all", "--format=%H %ct", "--", path)
    for line in log.splitlines():
        commit, when = line.split()
        try:
            blob = git(repo, "rev-parse", f"{commit}:{path}").strip()
        except subprocess.CalledProcessError:
            continue  # deleted in that commit
        seen[blob] = max(seen.get(blob, 0), int(when))
    return [git(repo, "cat-file", "blob", b) for b in sorted(seen, key=seen.get)]


# ----------------------------------------------------------------------- structure
@dataclass
class Node:
    """A statement with its parent block and index there."""

    stmt: cst.BaseStatement
    block: cst.CSTNode
    index: int


class _Statements(cst.CSTVisitor):
    """Every statement that sits directly in a block, with its block and ancestors."""

    def __init__(self) -> None:
        self.found: list[tuple[Node, tuple[cst.CSTNode, ...]]] = []
        self.stack: list[cst.CSTNode] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, (cst.Module, cst.IndentedBlock)):
            for i, s in enumerate(node.body):
                self.found.append((Node(s, node, i), tuple(self.stack) + (node,)))
        self.stack.append(node)
        return True

    def on_leave(self, original: cst.CSTNode) -> None:
        self.stack.pop()


@dataclass
class Shape:
    """The training loop and the inner loop of one version, if found."""

    statements: list[tuple[Node, tuple[cst.CSTNode, ...]]]
    outer: Node | None
    inner: Node | None

    def ancestors(self, stmt: cst.CSTNode) -> tuple[cst.CSTNode, ...]:
        return next(a for n, a in self.statements if n.stmt is stmt)

    def node(self, stmt: cst.CSTNode) -> Node:
        return next(n for n, _ in self.statements if n.stmt is stmt)


def _loops_in(node: cst.CSTNode) -> list[cst.CSTNode]:
    found: list[cst.CSTNode] = []

    class V(cst.CSTVisitor):
        def visit_For(self, n: cst.For) -> None:
            found.append(n)

        def visit_While(self, n: cst.While) -> None:
            found.append(n)

    node.visit(V())
    return found


def _called_names(node: cst.CSTNode) -> set[str]:
    names: set[str] = set()

    class V(cst.CSTVisitor):
        def visit_Call(self, n: cst.Call) -> None:
            if isinstance(n.func, cst.Name):
                names.add(n.func.value)

    node.visit(V())
    return names


def header(module: cst.Module, loop: cst.CSTNode) -> str:
    """A loop's header without whitespace: ``for <target> in <iter>`` or ``while <test>``."""
    parts = (loop.target, loop.iter) if isinstance(loop, cst.For) else (loop.test,)
    return "|".join("".join(module.code_for_node(p).split()) for p in parts)


def scope(ancestors: tuple[cst.CSTNode, ...]) -> tuple[str, ...]:
    """Names of the functions and classes around a statement."""
    return tuple(a.name.value for a in ancestors if isinstance(a, (cst.FunctionDef,
                                                                   cst.ClassDef)))


Like = tuple[tuple[str, tuple[str, ...]], tuple[str, tuple[str, ...]]]


def shape(module: cst.Module, like: Like | None = None) -> Shape:
    """The training and inner loops: those whose headers are ``like`` the newest version's
    (in functions of the same names) where such loops exist, else found by structure."""
    v = _Statements()
    module.visit(v)
    statements = v.found
    if like is None:
        return _by_structure(module, statements)
    loops = [(n, scope(a)) for n, a in statements if isinstance(n.stmt, LOOPS)]
    outermost = {id(n.stmt) for n, a in statements if isinstance(n.stmt, LOOPS)
                 and not any(isinstance(x, LOOPS) for x in a)}
    same = [[n for n, sc in loops if (header(module, n.stmt), sc) == h] for h in like]
    for k, (h, sc) in enumerate(like):  # else the one loop with the same target, or iterable
        for part in (0, -1):
            if len(same[k]) == 1:
                break
            alike = [(n, s) for n, s in loops
                     if header(module, n.stmt).split("|")[part] == h.split("|")[part]]
            keeps = (lambda s, sc=sc: True, lambda s, sc=sc: s == sc,
                     lambda s, sc=sc: s in ((), sc))
            for keep in keeps:
                if len(found := [n for n, s in alike if keep(s)]) == 1:
                    same[k] = found
                    break
        if len(same[k]) != 1 and sc:  # else the one loop of the same function, not nested
            found = [n for n, s in loops if s == sc and id(n.stmt) in outermost]
            if len(found) == 1:
                same[k] = found
    if all(len(x) == 1 for x in same):
        return Shape(statements, same[0][0], same[1][0])
    found = _by_structure(module, statements)
    if len(same[0]) == 1 and (found.outer is None or found.outer.stmt is not same[0][0].stmt):
        return Shape(statements, same[0][0], None)
    return found


def _by_structure(module: cst.Module, statements: list) -> Shape:
    functions = {n.stmt.name.value: n.stmt for n, _ in statements
                 if isinstance(n.stmt, cst.FunctionDef)}
    for node, anc in statements:
        if not isinstance(node.stmt, LOOPS) or any(isinstance(a, LOOPS) for a in anc):
            continue
        body = node.stmt.body
        nested = [x for x in _loops_in(body) if x is not node.stmt]
        if nested:
            return Shape(statements, node, next(n for n, _ in statements
                                                if n.stmt is nested[0]))
        for name in sorted(_called_names(body)):
            fn = functions.get(name)
            loops = _loops_in(fn.body) if fn is not None else []
            if loops:
                return Shape(statements, node, next(n for n, _ in statements
                                                    if n.stmt is loops[0]))
    return Shape(statements, None, None)


def _holds(stmt: cst.CSTNode, target: cst.CSTNode) -> bool:
    if stmt is target:
        return True
    found = False

    class V(cst.CSTVisitor):
        def on_visit(self, n: cst.CSTNode) -> bool:
            nonlocal found
            found = found or n is target
            return not found

    stmt.visit(V())
    return found


def _bound_names(stmts: list[cst.BaseStatement]) -> list[str]:
    """Plain names assigned by these statements, last first."""
    out: list[str] = []
    for s in reversed(stmts):
        if isinstance(s, cst.SimpleStatementLine):
            for small in s.body:
                if isinstance(small, cst.Assign):
                    for t in small.targets:
                        if isinstance(t.target, cst.Name):
                            out.append(t.target.value)
    return out


def _loop_target(loop: cst.CSTNode) -> str | None:
    if isinstance(loop, cst.For):
        t = loop.target
        while isinstance(t, cst.Tuple):
            t = t.elements[0].value
        return t.value if isinstance(t, cst.Name) else None
    return None


def insertion_points(sh: Shape) -> dict[str, tuple[cst.CSTNode, int, str | None]]:
    """``position -> (block, index, variable read)`` in the newest version."""
    out: dict[str, tuple[cst.CSTNode, int, str | None]] = {}
    if sh.outer is None:
        return out
    o, i = sh.outer, sh.inner
    before = _bound_names(list(o.block.body[:o.index]))
    out["before_loops"] = (o.block, o.index, before[0] if before else None)
    out["epoch_head"] = (o.stmt.body, 0, _loop_target(o.stmt))
    out["inner_head"] = (i.stmt.body, 0, _loop_target(i.stmt))
    inner_bound = _bound_names(list(i.stmt.body.body))
    out["after_inner"] = (i.block, i.index + 1, inner_bound[-1] if inner_bound else None)
    outer_bound = _bound_names(list(o.stmt.body.body))
    out["after_loops"] = (o.block, o.index + 1, outer_bound[0] if outer_bound else None)
    return out


class _InsertAt(cst.CSTTransformer):
    def __init__(self, block: cst.CSTNode, index: int, stmt: cst.BaseStatement) -> None:
        self.block, self.index, self.stmt = block, index, stmt

    def on_leave(self, original: cst.CSTNode, updated: cst.CSTNode) -> cst.CSTNode:
        if original is self.block:
            body = list(updated.body)
            body.insert(self.index, self.stmt)
            return updated.with_changes(body=body)
        return updated


def _import_flor(module: cst.Module) -> tuple[cst.Module, str]:
    """The module with ``import flordb as flor`` first unless it imports flor already."""
    code = module.code
    for alias in ("flor", "flordb"):
        if f"import {alias}\n" in code or f"import flordb as {alias}\n" in code:
            return module, alias
    return module.with_changes(
        body=[cst.parse_statement("import flordb as flor\n"), *module.body]), "flor"


def classify(position: str, name: str, patched: str, old: str,
             like: Like, edge: str | None = None, role: bool = False) -> str:
    """``right`` or ``wrong`` for a placed statement (see the module docstring). ``edge`` is
    ``first`` or ``last`` when the statement was also first or last in its block in the
    newest version: then first or last in the old block that holds the same loop is right
    too (the old version may have statements there that the newest one dropped). With
    ``role``, the statement logs its loop's target (the first name of it): then it must log
    the old loop's name in that role, never a look-alike."""
    lines = patched.splitlines(keepends=True)
    hit = [k for k, line in enumerate(lines) if f'"{name}"' in line]
    if len(hit) != 1:
        return "wrong"
    rest = "".join(line for k, line in enumerate(lines) if k != hit[0])
    # A statement after a last line that has no newline needs that line ended.
    added = min(([line for line in difflib.ndiff(o.splitlines(True), rest.splitlines(True))
                  if line[:2] in ("+ ", "- ")] for o in {old, old.rstrip("\n") + "\n"}),
                key=len)
    if any(not (a.startswith("+ import flor") or a.startswith("+ from flor")) for a in added):
        return "wrong"  # anything but the statement and a flor import changed
    module = cst.parse_module(patched)
    sh = shape(module, like)
    if sh.outer is None or (sh.inner is None and position in ("inner_head", "after_inner")):
        return "wrong"
    placed = next(n for n, _ in sh.statements
                  if isinstance(n.stmt, cst.SimpleStatementLine)
                  and f'"{name}"' in module.code_for_node(n.stmt))
    block, index = placed.block, placed.index
    body = list(block.body)
    prev = body[index - 1] if index else None
    nxt = body[index + 1] if index + 1 < len(body) else None
    o, i = sh.outer, sh.inner
    anchor = i.stmt if position == "after_inner" else o.stmt
    if edge is not None and position in ("before_loops", "after_loops", "after_inner") \
            and any(_holds(x, anchor) for x in body) \
            and index == (0 if edge == "first" else len(body) - 1):
        return "right"
    if position == "before_loops":
        return "right" if nxt is not None and _holds(nxt, o.stmt) else "wrong"
    if position in ("epoch_head", "inner_head"):
        loop = o.stmt if position == "epoch_head" else i.stmt
        if block is not loop.body or index != 0:
            return "wrong"
        return "right" if not role or _logged_name(placed.stmt) == _loop_target(loop) \
            else "wrong"
    if position == "after_inner":
        inside = block is i.block or _holds(o.stmt, block)
        return "right" if prev is not None and _holds(prev, i.stmt) and inside \
            and not _holds(i.stmt, block) else "wrong"
    if position == "after_loops":
        return "right" if prev is not None and _holds(prev, o.stmt) \
            and not _holds(o.stmt, block) else "wrong"
    raise ValueError(position)


def _logged_name(stmt: cst.CSTNode) -> str | None:
    """The variable a ``flor.log(name, variable)`` statement logs."""
    if isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0], cst.Expr):
        call = stmt.body[0].value
        if isinstance(call, cst.Call) and len(call.args) >= 2 \
                and isinstance(call.args[1].value, cst.Name):
            return call.args[1].value.value
    return None


def has_place(old: str, position: str, like: Like, var: str | None) -> bool:
    """Whether the old version has the loops ``position`` needs (the training loop; and the
    inner loop for positions inside or after it), and binds the variable the statement reads
    somewhere (a statement reading a name the old version never has cannot be placed)."""
    module = cst.parse_module(old)
    sh = shape(module, like)
    return sh.outer is not None and (sh.inner is not None or position not in (
        "inner_head", "after_inner")) and (var is None or var in _stored_names(module))


def _stored_names(module: cst.Module) -> set[str]:
    """Every name the module binds anywhere (assignments, loop and ``with`` targets,
    parameters, imports, definitions)."""
    wrapper = cst.metadata.MetadataWrapper(module, unsafe_skip_copy=True)
    contexts = wrapper.resolve(cst.metadata.ExpressionContextProvider)
    names = {node.value for node, ctx in contexts.items()
             if isinstance(node, cst.Name) and ctx == cst.metadata.ExpressionContext.STORE}
    for node in contexts:
        if isinstance(node, cst.Param):
            names.add(node.name.value)
    names.update(n.name.value for n in _walk(module, (cst.FunctionDef, cst.ClassDef)))
    for imp in _walk(module, (cst.Import, cst.ImportFrom)):
        if isinstance(imp.names, Sequence):
            for alias in imp.names:
                bound = alias.asname.name if alias.asname else alias.name
                if isinstance(bound, cst.Name):
                    names.add(bound.value)
                elif isinstance(bound, cst.Attribute):
                    names.add(cst.Module([]).code_for_node(bound).split(".")[0])
    return names


def _walk(module: cst.Module, kinds: tuple[type, ...]) -> list:
    found: list = []

    class _Find(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            if isinstance(node, kinds):
                found.append(node)
            return True

    module.visit(_Find())
    return found


def run(project: str, path: str, repo: Path, limit: int | None, verbose: bool
        ) -> Counter:
    counts: Counter = Counter()
    all_versions = versions(repo, path)
    newest_src, older = all_versions[-1], all_versions[:-1]
    if limit:
        older = older[-limit:]
    newest = cst.parse_module(newest_src)
    newest, alias = _import_flor(newest)
    sh = shape(newest)
    points = insertion_points(sh)
    like = tuple((header(newest, n.stmt), scope(sh.ancestors(n.stmt)))
                 for n in (sh.outer, sh.inner)) if points else None
    if not points:
        print(f"  {project}:{path}: no training loop found in the newest version")
        return counts
    for position, (block, index, var) in points.items():
        name = f"p_{position}"
        stmt = cst.parse_statement(f'{alias}.log("{name}", {var or 0})\n')
        edge = "first" if index == 0 else "last" if index == len(block.body) else None
        new_src = newest.visit(_InsertAt(block, index, stmt)).code
        propagator = Propagator(new_src, [name])
        for k, old in enumerate(older):
            try:
                result = propagator.into(old, locate_lines=False)
            except ParseError:
                counts["unparsable"] += 1
                continue
            p = result.placements[0]
            if p.status != "failed":
                verdict = classify(position, name, result.source, old, like, edge,
                                   role=var is not None and position.endswith("_head"))
            else:
                verdict = "reported" if has_place(old, position, like, var) else "absent"
            counts[(position, verdict)] += 1
            if verbose and verdict != "right":
                print(f"    {project}:{path} v{k} {position}: {verdict} {p.reason}")
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirrors", default="/work/.mirror", type=Path)
    ap.add_argument("--limit", type=int, default=None, help="older versions per script")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    total: Counter = Counter()
    t0 = time.perf_counter()
    for project, path in CORPUS:
        repo = args.mirrors / project.replace("/", "+") / "repo"
        if not repo.exists():
            print(f"  {project}: no mirror at {repo}, skipped")
            continue
        counts = run(project, path, repo, args.limit, args.verbose)
        n_versions = sum(v for k, v in counts.items() if k != "unparsable") // max(
            1, len({k[0] for k in counts if k != "unparsable"}))
        r, p, a, w = (sum(v for k, v in counts.items() if k[1:] == (verdict,))
                      for verdict in VERDICTS)
        print(f"{project}:{path}: {n_versions} older versions, right {r}, reported {p}, "
              f"no such place {a}, wrong {w}")
        total.update(counts)
    print(f"\n{'position':14s} {'right':>7s} {'reported':>9s} {'no place':>9s} {'wrong':>6s}")
    for position in POSITIONS:
        r, p, a, w = (total[(position, v)] for v in VERDICTS)
        print(f"{position:14s} {r:7d} {p:9d} {a:9d} {w:6d}")
    r, p, a, w = (sum(total[(pos, v)] for pos in POSITIONS) for v in VERDICTS)
    n = r + p + a + w
    print(f"{'all':14s} {r:7d} {p:9d} {a:9d} {w:6d}")
    print(f"placed right: {r / max(n, 1):.1%} of all {n}; {r / max(n - a, 1):.1%} of the "
          f"{n - a} whose old version has the place; silently wrong: {w}; "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
