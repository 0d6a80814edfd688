"""Static analysis of a patched script for the replay planner.

For each back-filled statement it finds *where* it runs relative to the main loop (the loop
whose iterations replay splits) and *what it reads*: the names in the statement, closed over
the script's assignments and mutations (flow-insensitive, so a superset). For the main loop's
body it finds the names the body *changes* (assigned, augmented, stored into, deleted, method
receivers, arguments that the script's functions or in-place library functions change, and
globals that the script's functions change) and, of those, the ones *carried* from one
iteration to the next (read in the body before being assigned in it). Names bound by
imports, module-level ``def``/``class`` and builtins are not state. The planner
(:mod:`flordb.hindsight.plan`) compares these sets with the variables ``flor.checkpointing``
enrolls, which a checkpoint restores.

Assumption, stated in ``docs/replay.md``: a ``for`` loop's body runs at least once, so a name
assigned at the top of a loop body counts as assigned after the loop.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import libcst as cst
from libcst.metadata import (
    ExpressionContext,
)

from flordb.errors import PlanError
from flordb.hindsight.cst_tree import dotted, walk
from flordb.hindsight.script import Script

_BUILTINS = frozenset(dir(builtins))
_STORE = (ExpressionContext.STORE, ExpressionContext.DEL)
#: Library functions (called on an imported module) that change their arguments in place,
#: besides PyTorch's ``name_`` convention.
_IN_PLACE = frozenset({"shuffle", "copyto", "put", "place", "putmask", "fill_diagonal"})

#: Positions of a statement relative to the main loop.
BEFORE, HEAD, AFTER_INNER, INNER, AFTER, UNKNOWN = (
    "before the loops", "outer loop, before inner loops", "outer loop, after an inner loop",
    "inside an inner loop", "after the loops", "unknown")


@dataclass
class Site:
    """One back-filled statement: its line, position and the names it reads directly."""

    line: int
    position: str
    reads: set[str] = field(default_factory=set)


@dataclass
class Analysis:
    """What the planner needs to know about one patched version of a script."""

    sites: list[Site]
    restored: set[str]  # variables enrolled with flor.checkpointing
    carried: set[str]  # names the main loop body changes and reads before assigning them
    inner_changed: set[str]  # names that the body's statements holding inner loops change
    training: set[str]  # names the loop's work reads or changes (inner loops, else the body)
    after_inner_changed: set[str]  # names the other statements after the first inner loop change
    log_reads: dict[str, set[str]]  # logged name -> what its flor.log statements read
    has_main_loop: bool
    deps: dict[str, set[str]] = field(repr=False, default_factory=dict)
    #: Names only the inner loops bind that code after them reads: skipping those loops
    #: would leave them unbound (a recorded ``flor.log("loss", loss.item())`` after the loop).
    dangling: set[str] = field(default_factory=set)
    #: ``flor.arg`` names whose values may decide control flow (an ``if``, a loop's
    #: iterable); ``"*"`` when some ``flor.arg`` cannot be followed.
    control_args: set[str] = field(default_factory=set)
    #: Logged names whose values read the clock (``time.time() - t0``): they differ on every
    #: execution, so a replay's re-executed value is never compared with the recorded one.
    clocked: set[str] = field(default_factory=set)

    def inputs(self, names: Iterable[str]) -> set[str]:
        """``names`` and every name their values flow from, stopping at restored names.

        A restored name's value comes from the checkpoint, whatever computed it.
        """
        out, todo = set(names), list(names)
        while todo:
            name = todo.pop()
            if name in self.restored:
                continue
            for d in self.deps.get(name, ()):
                if d not in out:
                    out.add(d)
                    todo.append(d)
        return out

    def fast_forward_ok(self, reads: Iterable[str]) -> bool:
        """Whether iterations run in full from a checkpoint compute what they did originally
        (see :meth:`unrestorable`)."""
        return not self.unrestorable(reads)

    def unrestorable(self, reads: Iterable[str]) -> set[str]:
        """The carried, unrestored names that make running iterations from a checkpoint
        compute something else than the run did.

        Every name carried across iterations that the loop's work or ``reads`` touch must be
        restored: an optimizer that is not enrolled would train the restored model wrongly.
        Executed iterations also change restored objects, so an unrestored object built from
        one and changed by the loop (a scheduler built from the optimizer, which writes its
        learning rate) counts too: writes are followed both ways.
        """
        inputs = self.inputs(self.training | set(reads))
        return ((self.carried - self.restored) & inputs) | self.writers(inputs & self.restored)

    def writers(self, restored: Iterable[str]) -> set[str]:
        """Unrestored names carried by the loop that were built from ``restored`` names and may
        write into them (``sched = StepLR(opt)`` then ``sched.step()``)."""
        targets = set(restored)
        return {w for w in self.carried - self.restored if self.deps.get(w, set()) & targets}

    def skip_ok(self, site: Site) -> bool:
        """Whether ``site`` (in the outer loop body) can run with the inner loops skipped."""
        if self.dangling:
            return False
        inputs = self.inputs(site.reads)
        unrestored = (self.carried | self.inner_changed) - self.restored
        if unrestored & inputs:
            return False
        # After a skipped inner loop the state is the next iteration's checkpoint; a restored
        # object that the rest of the body changes would then be seen a step ahead.
        return not (site.position == AFTER_INNER
                    and self.after_inner_changed & self.restored & inputs)


class _Script:
    """A parsed script with metadata and the sets of names that are not state."""

    def __init__(self, source: str) -> None:
        self.script = Script(source, "the patched script")
        self.module = self.script.module
        self.ctx = self.script.contexts
        self.pos = self.script.positions
        self.aliases = set(self.script.flordb_imports)  # the module, and functions by name
        self.imported: set[str] = set()
        self.functions: dict[str, cst.FunctionDef] = {}
        for node in self.script.nodes:
            if isinstance(node, (cst.Import, cst.ImportFrom)) \
                    and not isinstance(node.names, cst.ImportStar):
                for alias in node.names:
                    self.imported.add(dotted(alias.asname.name) if alias.asname else
                                      dotted(alias.name).split(".")[0])
            elif isinstance(node, cst.FunctionDef):
                self.functions.setdefault(node.name.value, node)
            elif isinstance(node, cst.ClassDef):
                self.imported.add(node.name.value)
        self.not_state = _BUILTINS | self.imported | set(self.functions) | self.aliases
        self._free_changes: dict[str, set[str]] = {}
        self._body_changes: dict[str, set[str]] = {}

    # ------------------------------------------------------------------ node queries
    def is_flor_call(self, node: cst.CSTNode, attr: str | None = None) -> TypeGuard[cst.Call]:
        """Whether ``node`` calls flordb's ``attr`` (any flordb function when None)."""
        function = self.script.flor_function(node)
        return function is not None and attr in (None, function)

    def loop_name(self, node: cst.CSTNode) -> str | None:
        """The name of ``for ... in flor.loop(NAME, ...)``, else None."""
        if isinstance(node, cst.For) and isinstance(node.iter, cst.Call) \
                and self.is_flor_call(node.iter, "loop") and node.iter.args:
            value = node.iter.args[0].value
            if isinstance(value, cst.SimpleString) and isinstance(
                    text := value.evaluated_value, str):
                return text
        return None

    def line_span(self, node: cst.CSTNode) -> tuple[int, int]:
        p = self.pos[node]
        return p.start.line, p.end.line

    def reads(self, node: cst.CSTNode) -> set[str]:
        """State names ``node`` loads (a comprehension's or lambda's own variables excluded)."""
        keywords = {id(n.keyword) for n in walk(node) if isinstance(n, cst.Arg) and n.keyword}
        return {n.value for n in walk(node) if isinstance(n, cst.Name) and id(n) not in keywords
                and self.ctx.get(n) is ExpressionContext.LOAD
                and not self.script.bound_in_expression(n)} - self.not_state

    def changes(self, node: cst.CSTNode) -> set[str]:
        """State names ``node`` may change.

        Assignment targets, bases of stored attributes and subscripts, receivers of method
        calls, arguments that a called function of the script changes, and arguments of
        in-place library functions (``torch.nn.init.zeros_``, ``np.random.shuffle``:
        :data:`_IN_PLACE`; their first argument, the array or tensor they write). Calling an
        object (``model(x)``, ``criterion(out, y)``) is not taken to change it: state such a
        call updates (batch-norm statistics) must be enrolled.
        """
        out: set[str] = set()
        own = self.script.bound_in_expression

        def add(base: cst.CSTNode) -> None:
            name = _base_name(base)
            if name is not None and not own(name):
                out.add(name.value)

        for n in walk(node):
            c = self.ctx.get(n)
            if isinstance(n, (cst.Name, cst.Attribute, cst.Subscript)) and c in _STORE:
                add(n)
            elif isinstance(n, cst.Call) and not self.is_flor_call(n):
                f = n.func
                if isinstance(f, cst.Attribute):
                    add(f.value)
                    if _base(f.value) in self.imported and _in_place(f.attr.value) and n.args:
                        add(n.args[0].value)  # the array or tensor written
                elif isinstance(f, cst.Name) and f.value in self.functions:
                    out |= self.free_changes(f.value)
                    out |= self.changed_args(f.value, n.args)
        return out - self.not_state

    def changed_args(self, name: str, args: Sequence[cst.Arg]) -> set[str]:
        """The names passed to module function ``name`` for parameters it changes."""
        fn = self.functions[name]
        params = [p.name.value for p in (*fn.params.posonly_params, *fn.params.params)]
        if name not in self._body_changes:
            self._body_changes[name] = set(params)  # recursion guard: assume all change
            self._body_changes[name] = self.changes(fn.body)
        changed = self._body_changes[name]
        out = set()
        for i, a in enumerate(args):
            param = a.keyword.value if a.keyword is not None else (
                params[i] if i < len(params) and not a.star else None)
            if param is None or param in changed or a.star:
                out.add(_base(a.value))
        return out

    def free_changes(self, name: str) -> set[str]:
        """Names outside function ``name`` that calling it may change."""
        if name not in self._free_changes:
            self._free_changes[name] = set()  # recursion guard
            fn = self.functions[name]
            params = {p.name.value for p in walk(fn.params) if isinstance(p, cst.Param)}
            declared = {n.value for g in walk(fn.body) if isinstance(g, cst.Global)
                        for n in (a.name for a in g.names)}
            assigned = {n.value for n in walk(fn.body) if isinstance(n, cst.Name)
                        and self.ctx.get(n) in _STORE} - declared
            self._free_changes[name] = self.changes(fn.body) - params - assigned
        return self._free_changes[name]

    def holds_loop(self, node: cst.CSTNode, seen: frozenset[str] = frozenset()) -> bool:
        """Whether running ``node`` enters a ``flor.loop`` (directly or via module functions)."""
        for n in walk(node):
            if self.loop_name(n) is not None:
                return True
            if isinstance(n, cst.Call) and isinstance(n.func, cst.Name) \
                    and n.func.value in self.functions and n.func.value not in seen:
                if self.holds_loop(self.functions[n.func.value].body, seen | {n.func.value}):
                    return True
        return False

    # ------------------------------------------------------------------ data flow
    def dependencies(self) -> dict[str, set[str]]:
        """name -> names whose values flow into it, over the whole script."""
        deps: dict[str, set[str]] = {}

        def add(targets: Iterable[str], sources: set[str]) -> None:
            for t in targets:
                deps.setdefault(t, set()).update(sources)

        for n in walk(self.module):
            if isinstance(n, (cst.Assign, cst.AugAssign, cst.AnnAssign)) and n.value is not None:
                targets = n.targets if isinstance(n, cst.Assign) else [n]
                add({x for t in targets for x in self.changes(t.target)} | (
                    {_base(n.target)} if isinstance(n, cst.AugAssign) else set()),
                    self.reads(n.value))
            elif isinstance(n, cst.For):
                add(self.changes(n.target), self.reads(n.iter))
            elif isinstance(n, cst.WithItem) and n.asname is not None:
                add(self.changes(n.asname.name), self.reads(n.item))
            elif isinstance(n, cst.Call) and not self.is_flor_call(n):
                add(self.changes(n), self.reads(n))
        return deps

    def live_in(self, body: Iterable[cst.BaseStatement], defined: set[str]) -> set[str]:
        """Names read in ``body`` before ``body`` surely assigns them."""
        live: set[str] = set()
        self._flow(list(body), set(defined), live)
        return live

    def _flow(self, stmts: list[cst.CSTNode], defined: set[str], live: set[str]) -> None:
        for stmt in stmts:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is not None:
                        live |= self.reads(small.value) - defined
                        targets = small.targets if isinstance(small, cst.Assign) else [small]
                        for t in targets:
                            live |= self.reads(t.target) - defined
                            if isinstance(t.target, (cst.Name, cst.Tuple, cst.List)):
                                defined |= {n.value for n in walk(t.target)
                                            if isinstance(n, cst.Name)}
                    elif isinstance(small, cst.AugAssign):
                        live |= (self.reads(small) | {_base(small.target)}) - defined
                    else:
                        live |= self.reads(small) - defined
            elif isinstance(stmt, cst.For):
                live |= self.reads(stmt.iter) - defined
                defined |= self.changes(stmt.target)
                self._flow(list(stmt.body.body), defined, live)  # assumed to run at least once
            elif isinstance(stmt, cst.With):
                for item in stmt.items:
                    live |= self.reads(item.item) - defined
                    if item.asname is not None:
                        defined |= self.changes(item.asname.name)
                self._flow(list(stmt.body.body), defined, live)
            elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                defined.add(stmt.name.value)
            else:  # if / while / try / match: branches may not run; nothing surely assigned
                for block in _blocks(stmt):
                    self._flow(block, set(defined), live)
                live |= self._header_reads(stmt) - defined

    def _header_reads(self, stmt: cst.CSTNode) -> set[str]:
        test = getattr(stmt, "test", None) or getattr(stmt, "subject", None)
        return self.reads(test) if test is not None else set()


def analyze(source: str, lines: Iterable[int], main_loop: str | None,
            depths: dict[str, int]) -> Analysis:
    """Analyze the patched ``source`` whose back-filled statements start at ``lines``.

    ``main_loop`` is the name of the run's main loop and ``depths`` the recorded depth of each
    loop name (a statement in a loop of depth 2 or more is inside an inner loop).
    """
    s = _Script(source)
    main = next((n for n in walk(s.module)
                 if isinstance(n, cst.For) and s.loop_name(n) == main_loop), None)
    deps = s.dependencies()
    restored = {a.value.value for n in walk(s.module) if s.is_flor_call(n, "checkpointing")
                for a in n.args if a.keyword is not None and isinstance(a.value, cst.Name)}
    # The main loop's statements (the small statements of a one-line body).
    body: list[Any] = list(main.body.body) if main is not None else []
    holders = [i for i, stmt in enumerate(body) if s.holds_loop(stmt)]
    carried, inner_changed, after_changed, training = set(), set(), set(), set()
    if main is not None:
        carried = s.changes(main.body) & s.live_in(body, s.changes(main.target))
        inner_changed = set().union(*(s.changes(body[i]) for i in holders))
        work = [body[i] for i in holders] or [b for b in body if not _is_log_statement(s, b)]
        training = set().union(*(s.changes(b) | s.reads(b) for b in work))
        if holders:
            for stmt in body[holders[0] + 1:]:
                if not s.holds_loop(stmt) and not _is_log_statement(s, stmt):
                    after_changed |= s.changes(stmt)
    dangling = _dangling(s, main, body, holders, restored) \
        if holders and main is not None else set()
    sites = []
    statements = {s.line_span(n)[0]: n for n in walk(s.module)
                  if isinstance(n, cst.SimpleStatementLine)}
    for line in lines:
        site = statements.get(line)
        if site is None:
            raise PlanError(f"no statement starts at line {line} of the patched script")
        position = _position(s, site, main, body, holders, depths)
        sites.append(Site(line, position, s.reads(site)))
    log_reads: dict[str, set[str]] = {}
    clock_vars = {t for n in walk(s.module) if isinstance(n, (cst.Assign, cst.AugAssign,
                                                               cst.AnnAssign))
                  and n.value is not None and _reads_clock(n.value)
                  for t in s.changes(n.targets[0].target if isinstance(n, cst.Assign)
                                     else n.target)}
    clocked = set()
    for n in walk(s.module):
        if isinstance(n, cst.Call) and s.is_flor_call(n, "log") and n.args \
                and isinstance(n.args[0].value, cst.SimpleString) \
                and isinstance(name := n.args[0].value.evaluated_value, str):
            reads = set().union(*(s.reads(a.value) for a in n.args[1:]))
            log_reads.setdefault(name, set()).update(reads)
            if any(_reads_clock(a.value) for a in n.args[1:]) \
                    or _closure(deps, reads) & clock_vars:
                clocked.add(name)
    return Analysis(sites, restored, carried, inner_changed, training, after_changed,
                    log_reads, main is not None, deps, dangling, _control_args(s, deps),
                    clocked)


#: Functions of ``time`` and ``datetime`` that read the clock.
_CLOCK = frozenset({"time", "time_ns", "perf_counter", "perf_counter_ns", "monotonic",
                    "monotonic_ns", "process_time", "process_time_ns", "now", "utcnow",
                    "today"})


def _reads_clock(node: cst.CSTNode) -> bool:
    """Whether ``node`` calls a clock (``time.time()``, ``datetime.now()``, ``perf_counter``)."""
    for n in walk(node):
        if isinstance(n, cst.Call):
            parts = dotted(n.func).split(".")
            if parts[-1] in _CLOCK and (len(parts) == 1 or parts[0] in ("time", "datetime")):
                return True
    return False


def _closure(deps: dict[str, set[str]], names: Iterable[str]) -> set[str]:
    """``names`` and every name their values flow from."""
    seen, todo = set(names), list(names)
    while todo:
        for d in deps.get(todo.pop(), ()):
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def _control_args(s: _Script, deps: dict[str, set[str]]) -> set[str]:
    """The ``flor.arg`` names whose values flow into a branch's test or a loop's iterable:
    runs that differ in them may take different code paths. ``"*"`` for an arg whose value is
    not bound to a name (it cannot be followed)."""
    by_variable: dict[str, str] = {}
    bound: set[int] = set()
    for n in walk(s.module):
        if isinstance(n, cst.Assign) and len(n.targets) == 1 \
                and isinstance(n.targets[0].target, cst.Name) and s.is_flor_call(n.value, "arg"):
            name = _literal_arg(n.value)
            if name is not None:
                by_variable[n.targets[0].target.value] = name
                bound.add(id(n.value))
    out = {"*" for n in walk(s.module) if s.is_flor_call(n, "arg") and id(n) not in bound}
    tests: set[str] = set()
    for n in walk(s.module):
        if isinstance(n, (cst.If, cst.While, cst.IfExp, cst.CompIf)):
            tests |= s.reads(n.test)
        elif isinstance(n, (cst.For, cst.CompFor)):
            tests |= s.reads(n.iter)
        elif isinstance(n, cst.Match):
            tests |= s.reads(n.subject)
    seen = _closure(deps, tests)
    return out | {arg for variable, arg in by_variable.items() if variable in seen}


def _literal_arg(call: cst.BaseExpression) -> str | None:
    """The literal name of a ``flor.arg("name", ...)`` call, else None."""
    if isinstance(call, cst.Call) and call.args \
            and isinstance(call.args[0].value, cst.SimpleString):
        value = call.args[0].value.evaluated_value
        return value if isinstance(value, str) else None
    return None


def _dangling(s: _Script, main: cst.For, body: list, holders: list[int],
              restored: set[str]) -> set[str]:
    """Names bound only inside the statements holding inner loops (nowhere else in the
    script, and not restored) that statements after the first of them read, in the main
    loop's body or after the main loop."""
    inside = {id(n) for i in holders for n in walk(body[i])}
    bound_in: set[str] = set()
    bound_elsewhere: set[str] = set()
    for n in walk(s.module):
        if isinstance(n, cst.Name) and s.ctx.get(n) in _STORE:
            (bound_in if id(n) in inside else bound_elsewhere).add(n.value)
    later = [b for i, b in enumerate(body) if i > holders[0] and i not in holders]
    last_line = s.line_span(main)[1]
    scope = _in_function(s, main) or s.module
    later += [n for n in walk(scope) if isinstance(n, cst.SimpleStatementLine)
              and s.line_span(n)[0] > last_line]
    read = set().union(*(s.reads(n) for n in later)) if later else set()
    return (read & bound_in) - bound_elsewhere - restored


def _position(s: _Script, stmt: cst.CSTNode, main: cst.For | None, body: list,
              holders: list[int], depths: dict[str, int]) -> str:
    line = s.line_span(stmt)[0]
    if main is None:
        return BEFORE if not _in_function(s, stmt) else UNKNOWN
    enclosing = [n for n in walk(s.module) if isinstance(n, cst.For)
                 and s.loop_name(n) is not None and _contains(s, n.body, line)]
    if enclosing:
        inner = enclosing[-1]  # walk is pre-order: the last one is the innermost
        if inner is main:
            index = next(i for i, b in enumerate(body) if _contains(s, b, line))
            if index in holders:
                return UNKNOWN  # in a compound statement that also holds an inner loop
            return AFTER_INNER if any(h < index for h in holders) else HEAD
        if depths.get(s.loop_name(inner) or "", 1) >= 2 and _contains(s, main.body, line):
            return INNER
        if depths.get(s.loop_name(inner) or "", 1) >= 2 and _in_function(s, inner):
            return INNER  # an inner loop moved into a function
        return UNKNOWN
    fn = _in_function(s, stmt)
    if fn is not None and not _contains(s, fn, s.line_span(main)[0]):
        return UNKNOWN  # runs wherever the function is called
    first, last = s.line_span(main)
    return BEFORE if line < first else AFTER if line > last else UNKNOWN


def _in_place(function: str) -> bool:
    return function.endswith("_") and not function.startswith("_") or function in _IN_PLACE


def _in_function(s: _Script, stmt: cst.CSTNode) -> cst.FunctionDef | None:
    line = s.line_span(stmt)[0]
    found = None  # pre-order: the last function holding the line is the innermost
    for n in walk(s.module):
        if isinstance(n, cst.FunctionDef) and _contains(s, n.body, line):
            found = n
    return found


def _contains(s: _Script, node: cst.CSTNode, line: int) -> bool:
    first, last = s.line_span(node)
    return first <= line <= last


def _is_log_statement(s: _Script, stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and all(
        isinstance(x, cst.Expr) and s.is_flor_call(x.value, "log") for x in stmt.body)


def _blocks(stmt: cst.CSTNode) -> list[list[cst.CSTNode]]:
    """The statement lists directly under a compound statement (all branches)."""
    out: list[list[cst.CSTNode]] = []
    for child in stmt.children:
        if isinstance(child, cst.IndentedBlock):
            out.append(list(child.body))
        elif isinstance(child, cst.SimpleStatementSuite):
            out.append([cst.SimpleStatementLine(body=child.body)])
        elif isinstance(child, cst.CSTNode) and not isinstance(child, cst.BaseExpression):
            out.extend(_blocks(child))
    return out


def _base(node: cst.CSTNode) -> str:
    """The leftmost name of ``a.b[c].d`` (``""`` when it is not a name)."""
    name = _base_name(node)
    return name.value if name is not None else ""


def _base_name(node: cst.CSTNode) -> cst.Name | None:
    """The leftmost :class:`~libcst.Name` node of ``a.b[c].d``, if it is one."""
    while isinstance(node, (cst.Attribute, cst.Subscript)):
        node = node.value
    return node if isinstance(node, cst.Name) else None
