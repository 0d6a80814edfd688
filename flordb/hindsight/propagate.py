"""Carry ``flor.log`` statements from today's script into a past version of it.

:func:`propagate` finds the requested ``flor.log`` statements in the new source (by logged
name or line), matches the two versions with GumTree, and inserts each statement into the old
source after the image of its nearest matched preceding sibling (else at the head of the image
of its enclosing block), with variables renamed through the mapping. Everything else in the old
source, comments and formatting included, is left byte-for-byte as it was. A statement that
cannot be placed with confidence is reported with the reason and left out, never guessed.
"""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, TypeVar

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from flordb.hindsight import bindings
from flordb.hindsight.cst_tree import FLORDB_MODULES, dotted, is_block, to_tree
from flordb.hindsight.gumtree import Mapping, Tree, match
from flordb.hindsight.script import Script

_ENCLOSING = ("For", "While", "With", "FunctionDef", "If", "Try")
#: Compound statements that run their block at most once: a statement found in one that the
#: old version lacks may go where the old version has its neighbours.
_WRAPPERS = ("If", "Else", "With", "Try", "Finally", "FunctionDef")


@dataclass
class Placement:
    """What happened to one statement: ``placed``, ``present`` or ``failed`` (with why)."""

    name: str | None
    new_line: int
    code: str
    status: Literal["placed", "present", "failed"]
    reason: str = ""
    old_line: int | None = None

    def describe(self) -> str:
        where = f"line {self.old_line}" if self.old_line else ""
        what = f"{self.name!r}" if self.name else f"line {self.new_line}"
        if self.name and self.new_line:
            what += f" (new line {self.new_line})"
        return " ".join(p for p in (f"{self.status}:", what, where and f"-> old {where}",
                                    self.reason and f"- {self.reason}") if p)


@dataclass
class PropagationResult:
    """The patched old source, one :class:`Placement` per statement, and the mapping."""

    source: str
    placements: list[Placement]
    mapping: Mapping = field(repr=False)

    @property
    def ok(self) -> bool:
        return all(p.status != "failed" for p in self.placements)


@dataclass
class _Parsed:
    script: Script
    tree: Tree
    nodes: dict[int, Tree]  # id(libcst node) -> its Tree

    @property
    def module(self) -> cst.Module:
        return self.script.module

    @property
    def aliases(self) -> set[str]:
        """Names bound to the flordb module."""
        return self.script.module_aliases

    @property
    def log_names(self) -> set[str]:
        """Names bound to ``flordb.log``."""
        return self.script.log_names

    def line(self, node: cst.CSTNode) -> int:
        """1-based line where ``node`` starts."""
        return self.script.line(node)

    @cached_property
    def variables(self) -> list[Tree]:
        """Every variable occurrence (a Name that is not an attribute, keyword or import)."""
        return _variables(self.tree)

    @cached_property
    def log_calls(self) -> list[tuple[cst.Call, str | None]]:
        return _log_calls(self)

    @cached_property
    def functions(self) -> dict[str, Tree]:
        """Functions of the file by name (names defined once only)."""
        defs = Counter(t.origin.name.value for t in self.tree.preorder()
                       if isinstance(t.origin, cst.FunctionDef))
        return {t.origin.name.value: t for t in self.tree.preorder()
                if isinstance(t.origin, cst.FunctionDef) and defs[t.origin.name.value] == 1}

    def runs_loop(self, tree: Tree) -> bool:
        """Whether ``tree`` holds a loop, or calls a function of the file that does."""
        return self.loopiness(tree) > 0

    def loopiness(self, tree: Tree) -> int:
        """2 when ``tree`` holds a loop, 1 when it calls a function of the file that does,
        else 0."""
        if any(t.label in ("For", "While") for t in tree.preorder()):
            return 2
        for t in tree.preorder():
            if isinstance(t.origin, cst.Call) and isinstance(t.origin.func, cst.Name):
                fn = self.functions.get(t.origin.func.value)
                if fn is not None and fn is not tree and not fn.contains(tree) and any(
                        x.label in ("For", "While") for x in fn.preorder()):
                    return 1
        return 0

    def words(self, tree: Tree) -> set[str]:
        """The identifiers and literals of ``tree``, and of the bodies of the file's functions
        it calls (one level deep)."""
        out = {t.value for t in tree.preorder() if t.value is not None} | {tree.label}
        for t in tree.preorder():
            if isinstance(t.origin, cst.Call) and isinstance(t.origin.func, cst.Name):
                fn = self.functions.get(t.origin.func.value)
                if fn is not None and not fn.contains(tree) and fn is not tree:
                    out |= {x.value for x in fn.preorder() if x.value is not None}
        return out

    def end_line(self, node: cst.CSTNode) -> int:
        return self.script.end_line(node)


def _parse(source: str, what: str) -> _Parsed:
    script = Script(source, what)
    tree = to_tree(script.module)
    script.nodes = [t.origin for t in tree.preorder()]  # the walk to_tree has done already
    return _Parsed(script, tree, {id(t.origin): t for t in tree.preorder()})


def _log_calls(parsed: _Parsed) -> list[tuple[cst.Call, str | None]]:
    """Every ``flor.log(...)`` call with its logged name (None when not a literal)."""
    return [(t.origin, _logged_name(t.origin)) for t in parsed.tree.preorder()
            if isinstance(t.origin, cst.Call) and _is_log_call(parsed, t.origin)]


def _is_log_call(parsed: _Parsed, call: cst.Call) -> bool:
    """Whether ``call`` calls ``flordb.log`` under any of the file's import names."""
    return parsed.script.flor_function(call) == "log"


def _logged_name(call: cst.Call) -> str | None:
    for arg in call.args:
        if arg.keyword is None or arg.keyword.value == "name":
            if isinstance(arg.value, cst.SimpleString):
                value = arg.value.evaluated_value
                return value if isinstance(value, str) else None
            return None
    return None


def _statement_of(parsed: _Parsed, node: cst.CSTNode) -> cst.BaseStatement | None:
    """The smallest statement holding ``node`` that sits directly in a block."""
    t: Tree | None = parsed.nodes[id(node)]
    while t is not None:
        if isinstance(t.origin, cst.BaseStatement) and t.parent is not None \
                and is_block(t.parent):
            return t.origin
        t = t.parent
    return None


def find_statements(source: str, names: Iterable[str] = (),
                    lines: Iterable[int] = ()) -> list[tuple[str | None, int, str]]:
    """``(logged name, line, code)`` of the statements :func:`propagate` would carry."""
    parsed = _parse(source, "the new version")
    return [(name, parsed.line(stmt), parsed.module.code_for_node(stmt).strip())
            for stmt, name in _select(parsed, list(names), list(lines))]


def _select(parsed: _Parsed, names: list[str],
            lines: list[int]) -> list[tuple[cst.BaseStatement, str | None]]:
    chosen: dict[int, tuple[cst.BaseStatement, str | None]] = {}
    for call, name in parsed.log_calls:
        stmt = _statement_of(parsed, call)
        if stmt is None:
            continue
        wanted = (name is not None and name in names) or any(
            parsed.line(stmt) <= n <= parsed.end_line(stmt) or parsed.line(call) == n
            for n in lines)
        if wanted and id(stmt) not in chosen:
            chosen[id(stmt)] = (stmt, name)
    return sorted(chosen.values(), key=lambda sn: parsed.line(sn[0]))


def propagate(new_source: str, old_source: str, names: Sequence[str] = (),
              lines: Sequence[int] = (), min_height: int = 2, min_dice: float = 0.5,
              max_size: int = 100) -> PropagationResult:
    """Insert the selected ``flor.log`` statements of ``new_source`` into ``old_source``."""
    return Propagator(new_source, names, lines, min_height, min_dice, max_size).into(old_source)


class Propagator:
    """The selected statements of one new version, ready to go into any number of old ones.

    The new version is parsed and its statements found once; each :meth:`into` parses one old
    version, matches it and patches it.
    """

    def __init__(self, new_source: str, names: Sequence[str] = (), lines: Sequence[int] = (),
                 min_height: int = 2, min_dice: float = 0.5, max_size: int = 100) -> None:
        self.new = _parse(new_source, "the new version")
        self.selected = _select(self.new, list(names), list(lines))
        self.missing = sorted(set(names) - {n for _, n in self.selected})
        self.params = (min_height, min_dice, max_size)

    def into(self, old_source: str, locate_lines: bool = True) -> PropagationResult:
        """Patch ``old_source``; ``locate_lines=False`` skips computing old line numbers."""
        new = self.new
        old = _parse(old_source, "the old version")
        mapping = match(new.tree, old.tree, *self.params, renamable=frozenset({"Name"}),
                        anchors=lambda: _anchors(new, old))
        placements: list[Placement] = []
        plan: dict[int, list[tuple[int, int, cst.BaseStatement, bool]]] = {}
        inserted: list[tuple[Placement, cst.BaseStatement]] = []
        for order, (stmt, name) in enumerate(self.selected):
            code = new.module.code_for_node(stmt).strip()
            placement = Placement(name, new.line(stmt), code, "failed")
            placements.append(placement)
            try:
                block, index, patched, replace = _place(new, old, mapping, stmt)
            except _Unplaceable as exc:
                placement.reason = str(exc)
                continue
            if patched is None:
                placement.status = "present"
                if locate_lines:
                    placement.old_line = old.line(_statements(block)[index])
                continue
            placement.status = "placed"
            if replace:
                placement.reason = "wraps the old statement it replaces"
            plan.setdefault(id(block), []).append((index, order, patched, replace))
            inserted.append((placement, patched))
        for name in self.missing:
            placements.append(Placement(name, 0, "", "failed",
                                        "no flor.log of this name in the new version"))
        module = old.module
        if plan:
            paths = {id(a.origin) for key in plan for a in old.nodes[key].ancestors()}
            module = module.visit(_Insert(plan, paths))
            module = _add_import(module, new, old, [s for _, s in inserted])
            if locate_lines:
                positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(
                    PositionProvider)
                for placement, stmt in inserted:
                    placement.old_line = positions[stmt].start.line
        return PropagationResult(module.code, placements, mapping)


def _anchors(new: _Parsed, old: _Parsed) -> list[tuple[Tree, Tree]]:
    """Nodes that correspond whatever their contents became, each found once in both
    versions: ``flor.loop`` loops and functions of the same name, and the statements that
    ``flor.log`` the same name."""
    keys_new, keys_old = _anchor_keys(new), _anchor_keys(old)
    return [(t, keys_old[k]) for k, t in keys_new.items() if k in keys_old]


def _anchor_keys(parsed: _Parsed) -> dict[tuple[str, ...], Tree]:
    found: dict[tuple[str, ...], list[Tree]] = {}
    for t in parsed.tree.preorder():
        node = t.origin
        key: tuple[str, ...] | None = None
        if isinstance(node, cst.FunctionDef):
            key = ("def", node.name.value)
        elif isinstance(node, cst.For):
            # A loop keeps its variable far more often than its iterable or body.
            key = ("for", _scope_name(t), _EMPTY.code_for_node(node.target))
        elif isinstance(node, cst.With):
            key = ("with", _scope_name(t), "".join(
                _EMPTY.code_for_node(item.item) for item in node.items).replace(" ", ""))
        if key is not None:
            found.setdefault(key, []).append(t)
        if isinstance(node, cst.For):
            target = _EMPTY.code_for_node(node.target)
            # Code moved into (or out of) a function: the variable, unique in the file.
            found.setdefault(("for*", target), []).append(t)
            # Rewritten from scratch: the one loop of a function is still that function's loop.
            if _scope_name(t):
                found.setdefault(("only-for", _scope_name(t)), []).append(t)
    for call, name in parsed.log_calls:
        stmt = _statement_of(parsed, call)
        if name is not None and stmt is not None:
            found.setdefault(("log", name), []).append(parsed.nodes[id(stmt)])
    return {k: ts[0] for k, ts in found.items() if len(ts) == 1}


_EMPTY = cst.Module(body=[])


def _scope_name(t: Tree) -> str:
    """The name of the function around ``t`` ("" at module level)."""
    return next((a.origin.name.value for a in t.ancestors()
                 if isinstance(a.origin, cst.FunctionDef)), "")


class _Unplaceable(Exception):
    """Raised with the reason a statement cannot be placed with confidence."""


def _place(new: _Parsed, old: _Parsed, mapping: Mapping, stmt: cst.BaseStatement
           ) -> tuple[cst.CSTNode, int, cst.BaseStatement | None, bool]:
    """``(old block node, index, statement or None if already present, replace?)``.

    The target block is the image of the statement's own block (through the compound
    statement that owns it); the position among that block's statements comes from both
    neighbours, each lifted to its ancestor in the target block, so a wrapper ``if/with/try``
    that one version has around a neighbour is stepped over, never entered. When the old
    version has statements of its own between the neighbours, structure decides or the
    statement is reported. A statement that old one wraps in a ``flor.log`` replaces it.
    """
    s_tree = new.nodes[id(stmt)]
    block_new = _parent(s_tree)
    target = _target_block(new, old, mapping, block_new)
    _check_enclosing(new, old, mapping, block_new, target)
    patched, renames = _rename(new, old, mapping, stmt, s_tree)
    patched = patched.with_changes(leading_lines=[])
    digest = to_tree(patched).digest  # formatting and comments do not count
    for i, candidate in enumerate(target.children):
        if candidate.digest == digest:
            return target.origin, i, None, False
    image = mapping.dst(s_tree)
    if image is not None and image.parent is target:
        at = target.children.index(image)
        old_names = {n for c, n in _log_calls_in(old, image)}
        new_names = {n for c, n in _log_calls_in(new, s_tree)}
        if new_names and new_names <= old_names:
            return target.origin, at, None, False
        unwrapped = _statement(patched.visit(_Unwrap(new)))
        if to_tree(unwrapped).digest == image.digest:
            return target.origin, at, patched.with_changes(
                leading_lines=image.origin.leading_lines), True
    read = bindings.reads(s_tree, _variables(s_tree)) - new.aliases - new.log_names
    clash = sorted((bindings.statement_binds(s_tree) - read) & {t.value for t in old.variables})
    if clash:
        raise _Unplaceable(f"it assigns {', '.join(clash)}, which the old version already uses "
                           f"for something else")
    index = _position(new, old, mapping, s_tree, target, read)
    _check_scope(new, old, mapping, s_tree, target)
    _check_reachable(old, target, index)
    _check_def_use(new, old, s_tree, target, index, read, renames)
    return target.origin, index, patched, False


def _target_block(new: _Parsed, old: _Parsed, mapping: Mapping, block_new: Tree) -> Tree:
    """The old block that corresponds to ``block_new``: the same block of the counterpart of
    the compound statement that owns it (a loop's body maps to that loop's body even where the
    old version wraps its contents in an ``if``)."""
    if block_new.parent is None:
        return old.tree
    image = _counterpart(mapping, block_new, old.tree)
    if image is not None:
        return image
    image = mapping.dst(block_new)
    owner = _parent(block_new)
    if image is not None and is_block(image) and image.parent is not None \
            and image.parent.label == owner.label:
        return image
    if owner.label in _WRAPPERS:
        # A wrapper the old version lacks: where the old version has the statements around
        # the statement, if (nearly) all of them sit in one block, is where it goes.
        parents = Counter(id(i.parent) for c in block_new.children
                          if (i := mapping.dst(c)) is not None and i.parent is not None)
        if parents:
            (top, votes), = parents.most_common(1)
            total = sum(parents.values())
            if votes == total or (votes >= 3 and votes >= 0.8 * total):
                block = next(i.parent for c in block_new.children
                             if (i := mapping.dst(c)) is not None and id(i.parent) == top)
                if block is not None and is_block(block):
                    return block
    raise _Unplaceable(f"its enclosing {owner.label.lower()} (new line "
                       f"{new.line(owner.origin)}) has no counterpart in the old version")


def _counterpart(mapping: Mapping, node: Tree, old_root: Tree) -> Tree | None:
    """The old node that plays ``node``'s part: its image when it has one of the same kind;
    else, for a part of a compound statement (its body, its ``else``), the same part of the
    counterpart of that statement. Statements in a block need an image of their own."""
    image = mapping.dst(node)
    if image is not None and image.label == node.label:
        return image
    parent = node.parent
    if parent is None:
        return old_root
    if is_block(parent):
        return None
    owner = _counterpart(mapping, parent, old_root)
    if owner is None:
        return None
    mine = [c for c in parent.children if c.label == node.label]
    theirs = [c for c in owner.children if c.label == node.label]
    return theirs[mine.index(node)] if len(mine) == len(theirs) else None


def _lift(mapping: Mapping, sibling: Tree, target: Tree, old: _Parsed) -> int | None:
    """Index in ``target`` of the ancestor of ``sibling``'s image that is a direct child of
    ``target``; None when it has no image there. Lifting never steps over a loop or a
    ``__main__`` guard of the old version that ``sibling`` is not in today: beside that loop
    the statement would run once where it ran once per iteration (``for model_name in ...:``
    around the epoch loop), and outside the guard it would run on import."""
    node = mapping.dst(sibling)
    while node is not None and node.parent is not target:
        node = node.parent
        if node is None or not (node.label in ("For", "While") or _is_main_guard(node.origin)):
            continue
        if (source := mapping.src(node)) is not None and source.contains(sibling):
            continue  # the same loop or guard encloses the sibling today
        what = "loop" if node.label != "If" else "__main__ guard"
        raise _Unplaceable(
            f"its neighbour runs inside the {what} at old line {old.line(node.origin)}, which "
            f"does not enclose it today: placed beside it, it would run "
            + ("a different number of times" if what == "loop" else "on import"))
    return None if node is None else target.children.index(node)


def _position(new: _Parsed, old: _Parsed, mapping: Mapping, s_tree: Tree, target: Tree,
              read: set[str]) -> int:
    """Where in ``target`` the statement goes, from both neighbours (see :func:`_place`)."""
    siblings = _parent(s_tree).children
    pos = siblings.index(s_tree)
    code = [not _is_log_statement(new, t) for t in siblings]
    before: tuple[int, int] | None = None
    after: tuple[int, int] | None = None
    for j in range(pos - 1, -1, -1):
        if (at := _lift(mapping, siblings[j], target, old)) is not None:
            before = (j, at)
            break
    for j in range(pos + 1, len(siblings)):
        if (at := _lift(mapping, siblings[j], target, old)) is not None:
            after = (j, at)
            break
    lo = before[1] + 1 if before else 0
    hi = after[1] if after else len(target.children)
    new_before = [t for t, c in zip(siblings[before[0] + 1 if before else 0:pos],
                                    code[before[0] + 1 if before else 0:pos]) if c]
    new_after = [t for t, c in zip(siblings[pos + 1:after[0] if after else None],
                                   code[pos + 1:after[0] if after else None]) if c]
    if before and after and before[1] == after[1]:
        wrapper = target.children[before[1]]
        raise _Unplaceable(
            f"the statements before and after it both map into the {wrapper.label.lower()} "
            f"at old line {old.line(wrapper.origin)}, which this version does not have "
            f"around them")
    if lo > hi:
        assert before is not None and after is not None  # only both can cross
        raise _Unplaceable(
            f"the statements before and after it are in the opposite order in the old "
            f"version (old lines {old.line(target.children[before[1]].origin)} and "
            f"{old.line(target.children[after[1]].origin)})")
    if lo == hi:
        return _after_loops_too(new, old, new_before, target.children[lo:lo], lo)
    # Old statements without a counterpart stand between the neighbours.
    between = target.children[lo:hi]
    if not new_before and before is None:
        return lo  # first in its block in the new version: first in the old one
    if new_before and not new_after:
        # The old statements stand where the new version has the ones before it.
        return _after_loops_too(new, old, new_before, between, hi)
    if new_after and not new_before:
        return lo
    if not new_before and not new_after:
        touched = set().union(*(bindings.touches(t) for t in between))
        if not touched & read:
            # The old-only statements do not affect what it reads: keep it next to the
            # neighbour that runs a loop (before a loop, or after one), else after the first.
            if after and new.loopiness(siblings[after[0]]) > (
                    new.loopiness(siblings[before[0]]) if before else 0):
                return hi
            return lo
        raise _Unplaceable(
            f"old lines {old.line(between[0].origin)}-{old.end_line(between[-1].origin)}, "
            f"which the new version does not have, stand between its neighbours and change "
            f"{', '.join(sorted(touched & read))}, which it reads")
    at = _split(new, old, new_before, new_after, between)
    if at is not None:
        _after_loops_too(new, old, new_before, between[:at], lo + at)
    if at is None:
        raise _Unplaceable(
            f"old lines {old.line(between[0].origin)}-{old.end_line(between[-1].origin)} "
            f"stand between its neighbours and match neither the new statements before it "
            f"nor those after it better")
    return lo + at


def _after_loops_too(new: _Parsed, old: _Parsed, new_before: list[Tree],
                     old_before: list[Tree], index: int) -> int:
    """``index``, unless the new code before the statement (without counterpart) runs a loop
    and the old code it would follow runs none: the statement reads what that loop computed,
    and the old version has nothing in its place."""
    looping = [t for t in new_before if new.runs_loop(t)]
    if looping and not any(old.runs_loop(t) for t in old_before):
        raise _Unplaceable(
            f"the loop at new line {new.line(looping[-1].origin)} before it has no "
            f"counterpart before its place in the old version")
    return index


def _split(new: _Parsed, old: _Parsed, before: list[Tree], after: list[Tree],
           between: list[Tree]) -> int | None:
    """The split of ``between`` into a part like ``before`` and a part like ``after`` that
    fits best by the identifiers they use, a call counting with the body of the function of
    the file it calls (an inlined loop is like the call that replaced it); None when two
    splits fit equally well."""
    def likeness(t: Tree, group: list[Tree]) -> float:
        w = old.words(t)
        return max(len(w & new.words(g)) / len(w | new.words(g)) for g in group)

    scores = [sum(likeness(t, before) for t in between[:k])
              + sum(likeness(t, after) for t in between[k:]) for k in range(len(between) + 1)]
    best = max(scores)
    return scores.index(best) if scores.count(best) == 1 else None


def _check_def_use(new: _Parsed, old: _Parsed, s_tree: Tree, target: Tree, index: int,
                   read: set[str], renames: dict[str, str]) -> None:
    """Every name the statement reads that its new place has bound must be bound at the old
    place too (an after-the-loop statement reading ``loss`` cannot go before the loop)."""
    block = _parent(s_tree)
    bound_new = bindings.bound_before(block, block.children.index(s_tree))
    bound_old = bindings.bound_before(target, index)
    missing = sorted(renames.get(n, n) for n in read
                     if n in bound_new and renames.get(n, n) not in bound_old)
    if missing:
        near = target.children[index - 1] if index else target
        raise _Unplaceable(
            f"it reads {', '.join(missing)}, which the old version has not bound at its place "
            f"(after old line {old.end_line(near.origin)})" if index else
            f"it reads {', '.join(missing)}, which the old version has not bound at the head "
            f"of the block at old line {old.line(target.origin)}")


def _check_scope(new: _Parsed, old: _Parsed, mapping: Mapping, s_tree: Tree,
                 target: Tree) -> None:
    """A statement that runs inside a function or an ``if __name__ == "__main__":`` guard
    today never goes to the old version's module level when the old version runs that code
    inside a function or a guard too (where its neighbours' counterparts are, or the old
    script has a ``__main__`` guard): at module level it would run on import. (An old script
    that ran everything at module level, before its loop moved into a function, is fine.)"""
    scope = _run_scope(s_tree)
    if scope is None or _run_scope(target, include_self=True) is not None:
        return
    guarded = any(_is_main_guard(t.origin) for t in old.tree.preorder() if t.label == "If")
    neighbours = [mapping.dst(t) for t in _parent(s_tree).children if t is not s_tree]
    if guarded or any(i is not None and _run_scope(i) is not None for i in neighbours):
        what = f"function {scope.origin.name.value}" if scope.label == "FunctionDef" \
            else "the __main__ guard"
        raise _Unplaceable(f"it runs inside {what} (new line {new.line(scope.origin)}); its "
                           f"place in the old version is at module level, where it would run "
                           f"whenever the module is imported")


def _run_scope(t: Tree, include_self: bool = False) -> Tree | None:
    """The nearest function or ``__main__`` guard that encloses ``t``."""
    for a in ([t] if include_self else []) + list(t.ancestors()):
        if a.label == "FunctionDef" or (a.label == "If" and _is_main_guard(a.origin)):
            return a
    return None


def _is_main_guard(node: object) -> bool:
    if not isinstance(node, cst.If) or not isinstance(node.test, cst.Comparison):
        return False
    parts = [node.test.left, *(c.comparator for c in node.test.comparisons)]
    return any(isinstance(p, cst.Name) and p.value == "__name__" for p in parts) and any(
        isinstance(p, cst.SimpleString) and p.evaluated_value == "__main__" for p in parts)


def _check_reachable(old: _Parsed, target: Tree, index: int) -> None:
    """Never after a ``return``, ``raise``, ``break`` or ``continue`` of the same block."""
    for t in target.children[:index]:
        node = t.origin
        if isinstance(node, cst.SimpleStatementLine) and any(
                isinstance(x, (cst.Return, cst.Raise, cst.Break, cst.Continue))
                for x in node.body):
            kind = type(next(x for x in node.body if isinstance(
                x, (cst.Return, cst.Raise, cst.Break, cst.Continue)))).__name__.lower()
            raise _Unplaceable(f"its place in the old version follows the {kind} at old line "
                               f"{old.line(node)}, so it would never run")


def _is_log_statement(parsed: _Parsed, tree: Tree) -> bool:
    node = tree.origin
    return isinstance(node, cst.SimpleStatementLine) and all(
        isinstance(x, cst.Expr) and isinstance(x.value, cst.Call)
        and _is_log_call(parsed, x.value) for x in node.body)


def _loop_roles(new: _Parsed, old: _Parsed, mapping: Mapping, s_tree: Tree
                ) -> dict[str, str | None]:
    """For each name bound by the target of a loop around the statement today, the old name
    in the same role: the same position of the counterpart loop's target, iterating the same
    kind of thing (``for i, batch in enumerate(...)`` against ``for batch, i in enumerate``:
    ``i`` is the index today, so the old index, ``batch``). None: no name has that role in
    the old version (``enumerate`` today, a plain iterable then)."""
    out: dict[str, str | None] = {}
    for a in s_tree.ancestors():
        image = mapping.dst(a) if a.label == "For" else None
        if image is None or image.label != "For" or not isinstance(a.origin, cst.For) \
                or not isinstance(image.origin, cst.For):
            continue
        theirs = {path: name for name, path in _target_paths(image.origin.target).items()}
        same_kind = _iter_kind(a.origin) == _iter_kind(image.origin)
        for name, path in _target_paths(a.origin.target).items():
            out.setdefault(name, theirs.get(path) if same_kind else None)
    return out


def _target_paths(target: cst.BaseExpression, path: tuple[int, ...] = ()
                  ) -> dict[str, tuple[int, ...]]:
    """The names a loop target binds, each with its position (``(0, 1)``: the second name of
    the first element)."""
    if isinstance(target, cst.Name):
        return {target.value: path}
    out: dict[str, tuple[int, ...]] = {}
    if isinstance(target, (cst.Tuple, cst.List)):
        for i, element in enumerate(target.elements):
            for name, p in _target_paths(element.value, (*path, i)).items():
                out.setdefault(name, p)
    return out


def _iter_kind(loop: cst.For) -> str:
    """What a loop iterates, as far as roles go: the function it calls (``enumerate``,
    ``zip``; inside ``flor.loop("epoch", ...)`` or FlorDB 2's ``Flor.loop(...)``), else the
    kind of expression."""
    it = loop.iter
    if isinstance(it, cst.Call) and dotted(it.func).rpartition(".")[2] == "loop" \
            and it.args and it.args[-1].keyword is None:
        it = it.args[-1].value
    if isinstance(it, cst.Call):
        return dotted(it.func).rpartition(".")[2] or "call"
    return "value"


class _Unwrap(cst.CSTTransformer):
    """``flor.log(name, expr)`` -> ``expr``: the statement as it was before it was logged."""

    def __init__(self, parsed: _Parsed) -> None:
        super().__init__()
        self.parsed = parsed

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if _is_log_call(self.parsed, updated) and len(updated.args) >= 2:
            return updated.args[1].value
        return updated


def _log_calls_in(parsed: _Parsed, tree: Tree) -> list[tuple[cst.Call, str | None]]:
    inside = {id(t.origin) for t in tree.preorder()}
    return [(c, n) for c, n in parsed.log_calls if id(c) in inside]


def _check_enclosing(new: _Parsed, old: _Parsed, mapping: Mapping, block_new: Tree,
                     anchor_block: Tree) -> None:
    """Every matched loop/with/def/if enclosing the statement must enclose its new place."""
    enclosing_old = {id(a) for a in (anchor_block, *anchor_block.ancestors())}
    for a in (block_new, *block_new.ancestors()):
        if a.label not in _ENCLOSING:
            continue
        image = mapping.dst(a)
        if image is not None and id(image) not in enclosing_old:
            raise _Unplaceable(
                f"its enclosing {a.label.lower()} (new line {new.line(a.origin)}"
                f") maps to old line {old.line(image.origin)}, which does not "
                f"enclose the insertion point")


def _statements(node: cst.CSTNode) -> list[cst.BaseStatement]:
    """The statements of a block node (a module or an indented block)."""
    assert isinstance(node, (cst.Module, cst.IndentedBlock)), f"{type(node).__name__}: no block"
    return list(node.body)


def _statement(node: object) -> cst.BaseStatement:
    """A transformed statement, which the transformers here never remove or flatten."""
    assert isinstance(node, cst.BaseStatement), f"{type(node).__name__} is not a statement"
    return node


def _parent(t: Tree) -> Tree:
    """The parent of a node that has one (every statement and block but the module)."""
    if t.parent is None:
        raise _Unplaceable(f"{t.label} has no enclosing block")
    return t.parent


def _text(t: Tree) -> str:
    """The identifier of a ``Name`` node."""
    return t.value or ""


def _variables(tree: Tree) -> list[Tree]:
    """Name nodes of ``tree`` that are variables: not attributes, keywords or import names."""
    out = []
    for t in tree.preorder():
        if t.label != "Name" or t.parent is None:
            continue
        parent = t.parent.origin
        if isinstance(parent, cst.Attribute) and parent.attr is t.origin:
            continue
        if isinstance(parent, cst.Arg) and parent.keyword is t.origin:
            continue
        if isinstance(parent, (cst.ImportAlias, cst.AsName, cst.ImportFrom)):
            continue
        out.append(t)
    return out


def _rename(new: _Parsed, old: _Parsed, mapping: Mapping, stmt: cst.BaseStatement,
            s_tree: Tree) -> tuple[cst.BaseStatement, dict[str, str]]:
    """``stmt`` with each variable it reads renamed to what the mapping says the old version
    calls it, and the renames. Names the statement itself binds are new by definition and keep
    their names, unless the old version already uses that name for something else."""
    own = bindings.statement_binds(s_tree) - bindings.reads(s_tree, _variables(s_tree))
    skip = new.aliases | new.log_names | bindings.inner_names(s_tree) | own
    inside = {id(t) for t in s_tree.preorder()}
    scope = next((a for a in s_tree.ancestors() if a.label in ("FunctionDef", "Lambda")),
                 new.tree)
    occurrences: dict[str, Counter] = {}
    in_scope = new.variables if scope is new.tree else \
        [t for t in new.variables if scope.contains(t)]
    sources: dict[str, Counter] = {}  # old name -> the new names mapped to it
    for t in in_scope:
        if id(t) in inside or t.value in skip:
            continue
        image = mapping.dst(t)
        if image is not None and image.label == "Name":
            occurrences.setdefault(_text(t), Counter())[_text(image)] += 1
            sources.setdefault(_text(image), Counter())[_text(t)] += 1
    # A rename holds only both ways: the old name must stand mostly for this new name.
    occurrences = {n: Counter({o: k for o, k in votes.items()
                               if sources[o].most_common(1)[0][0] == n})
                   for n, votes in occurrences.items()}
    old_names = {t.value for t in old.variables}
    renames: dict[str, str] = {}
    roles = _loop_roles(new, old, mapping, s_tree)
    for t in _variables(s_tree):
        name = _text(t)
        if name in skip or name in renames:
            continue
        votes = occurrences.get(name)
        if name in roles:  # bound by an enclosing loop's target: its role decides
            role = roles[name]
            if role is None:
                raise _Unplaceable(f"{name!r} is bound by the target of the loop around it, "
                                   f"and the old version's loop binds nothing in that role")
            renames[name] = role
        elif votes:
            renames[name] = votes.most_common(1)[0][0]
        elif name not in old_names and not hasattr(builtins, name):
            raise _Unplaceable(f"variable {name!r} has no counterpart in the old version")
    renames = {k: v for k, v in renames.items() if k != v}
    if not renames:
        return stmt, renames
    targets = {id(t.origin) for t in _variables(s_tree) if t.value in renames}

    class Renamer(cst.CSTTransformer):
        def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
            if id(original) in targets:
                return updated.with_changes(value=renames[original.value])
            return updated

    return _statement(stmt.visit(Renamer())), renames


def _add_import(module: cst.Module, new: _Parsed, old: _Parsed,
                statements: list[cst.BaseStatement]) -> cst.Module:
    """Add the new version's flordb import when the old one lacks what the statements use."""
    used = set()
    for stmt in statements:
        used |= {t.value for t in _variables(to_tree(stmt))} & (new.aliases | new.log_names)
    if not used or used <= (old.aliases | old.log_names):
        return module
    missing = used - old.aliases - old.log_names
    imports = [s for s in new.module.body if isinstance(s, cst.SimpleStatementLine) and any(
        isinstance(x, (cst.Import, cst.ImportFrom)) and _binds_flordb(x)
        and bindings.binds(to_tree(x)) & missing for x in s.body)]
    if not imports:
        return module
    body = list(module.body)
    at = 0
    for i, s in enumerate(body):
        if isinstance(s, cst.SimpleStatementLine) and all(
                isinstance(x, (cst.Import, cst.ImportFrom)) for x in s.body):
            at = i + 1
        elif i == 0 and isinstance(s, cst.SimpleStatementLine) and isinstance(
                s.body[0], cst.Expr) and isinstance(s.body[0].value, cst.SimpleString):
            at = 1  # after the docstring
    body[at:at] = [s.with_changes(leading_lines=[]) for s in imports]
    return module.with_changes(body=body)


def _binds_flordb(node: cst.Import | cst.ImportFrom) -> bool:
    if isinstance(node, cst.Import):
        return any(dotted(a.name) in FLORDB_MODULES for a in node.names)
    return node.module is not None and dotted(node.module) in FLORDB_MODULES


_Block = TypeVar("_Block", cst.Module, cst.IndentedBlock)


class _Insert(cst.CSTTransformer):
    """Insert planned statements into the blocks of the old module."""

    def __init__(self, plan: dict[int, list[tuple[int, int, cst.BaseStatement, bool]]],
                 paths: set[int]) -> None:
        super().__init__()
        self.plan = plan
        self.paths = paths  # ancestors of the planned blocks: the only nodes worth visiting

    def on_visit(self, node: cst.CSTNode) -> bool:
        return id(node) in self.paths or id(node) in self.plan

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        return self._insert(original, updated)

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock
                            ) -> cst.IndentedBlock:
        return self._insert(original, updated)

    def _insert(self, original: cst.CSTNode, updated: _Block) -> _Block:
        inserts = self.plan.get(id(original))
        if not inserts:
            return updated
        body = _statements(updated)
        for index, _, stmt, replace in inserts:
            if replace:
                body[index] = stmt
        for index, _, stmt, replace in sorted(inserts, key=lambda x: (x[0], x[1]),
                                              reverse=True):
            if not replace:
                body.insert(index, stmt)
        return updated.with_changes(body=body)
