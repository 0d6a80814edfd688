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
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable, Sequence

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from flordb.hindsight.cst_tree import FLORDB_MODULES, dotted, is_block, to_tree
from flordb.hindsight.gumtree import Mapping, Tree, match

_ENCLOSING = ("For", "While", "With", "FunctionDef", "If", "Try")


class ParseError(ValueError):
    """A source that is not valid Python."""


@dataclass
class Placement:
    """What happened to one statement: ``placed``, ``present`` or ``failed`` (with why)."""

    name: str | None
    new_line: int
    code: str
    status: str
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
    module: cst.Module
    tree: Tree
    nodes: dict[int, Tree]  # id(libcst node) -> its Tree
    aliases: set[str]  # names bound to the flordb module
    log_names: set[str]  # names bound to flordb.log
    _positions: dict | None = None

    def line(self, node: cst.CSTNode) -> int:
        """1-based line where ``node`` starts (positions are computed on first use)."""
        if self._positions is None:
            wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)
            self._positions = wrapper.resolve(PositionProvider)
        return self._positions[node].start.line

    @cached_property
    def variables(self) -> list[Tree]:
        """Every variable occurrence (a Name that is not an attribute, keyword or import)."""
        return _variables(self.tree)

    @cached_property
    def log_calls(self) -> list[tuple[cst.Call, str | None]]:
        return _log_calls(self)

    def end_line(self, node: cst.CSTNode) -> int:
        self.line(node)
        return self._positions[node].end.line


def _parse(source: str, what: str) -> _Parsed:
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        raise ParseError(f"{what} does not parse: {str(exc).splitlines()[0]} "
                         f"(line {exc.raw_line})") from None
    tree = to_tree(module)
    nodes = {id(t.origin): t for t in tree.preorder()}
    aliases, log_names = _flordb_bindings(tree)
    return _Parsed(module, tree, nodes, aliases, log_names)


def _flordb_bindings(tree: Tree) -> tuple[set[str], set[str]]:
    """Names bound to the flordb module and to ``flordb.log`` by the file's imports."""
    aliases: set[str] = set()
    log_names: set[str] = set()
    for t in tree.preorder():
        node = t.origin
        if isinstance(node, cst.Import):
            for alias in node.names:
                name = dotted(alias.name)
                if name in FLORDB_MODULES:
                    aliases.add(dotted(alias.asname.name) if alias.asname else name)
        elif isinstance(node, cst.ImportFrom) and node.module is not None \
                and dotted(node.module) in FLORDB_MODULES \
                and not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                if dotted(alias.name) == "log":
                    log_names.add(dotted(alias.asname.name) if alias.asname else "log")
    return aliases, log_names


def _log_calls(parsed: _Parsed) -> list[tuple[cst.Call, str | None]]:
    """Every ``flor.log(...)`` call with its logged name (None when not a literal)."""
    return [(t.origin, _logged_name(t.origin)) for t in parsed.tree.preorder()
            if isinstance(t.origin, cst.Call) and _is_log_call(parsed, t.origin)]


def _is_log_call(parsed: _Parsed, call: cst.Call) -> bool:
    """Whether ``call`` calls ``flordb.log`` under one of the file's import names."""
    func = call.func
    if isinstance(func, cst.Attribute):
        return func.attr.value == "log" and dotted(func.value) in parsed.aliases
    return isinstance(func, cst.Name) and func.value in parsed.log_names


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
                    placement.old_line = old.line(block.body[index])
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


def _anchor_keys(parsed: _Parsed) -> dict[tuple[str, str], Tree]:
    found: dict[tuple[str, str], list[Tree]] = {}
    for t in parsed.tree.preorder():
        node = t.origin
        key = None
        if isinstance(node, cst.FunctionDef):
            key = ("def", node.name.value)
        elif isinstance(node, cst.For) and isinstance(node.iter, cst.Call) \
                and isinstance(node.iter.func, cst.Attribute) \
                and node.iter.func.attr.value == "loop" \
                and dotted(node.iter.func.value) in parsed.aliases:
            name = _logged_name(node.iter)
            key = ("loop", name) if name is not None else None
        if key is not None:
            found.setdefault(key, []).append(t)
    for call, name in parsed.log_calls:
        stmt = _statement_of(parsed, call)
        if name is not None and stmt is not None:
            found.setdefault(("log", name), []).append(parsed.nodes[id(stmt)])
    return {k: ts[0] for k, ts in found.items() if len(ts) == 1}


class _Unplaceable(Exception):
    """Raised with the reason a statement cannot be placed with confidence."""


def _place(new: _Parsed, old: _Parsed, mapping: Mapping, stmt: cst.BaseStatement
           ) -> tuple[cst.CSTNode, int, cst.BaseStatement | None, bool]:
    """``(old block node, index, statement or None if already present, replace?)``.

    When the statement is an old statement with a ``flor.log`` wrapped around part of it,
    it replaces that statement instead of being inserted beside it.
    """
    s_tree = new.nodes[id(stmt)]
    block_new = s_tree.parent
    pos = block_new.children.index(s_tree)
    block_image = mapping.dst(block_new)
    anchor_block, index = None, None
    for sibling in reversed(block_new.children[:pos]):
        image = mapping.dst(sibling)
        if image is None or image.parent is None or not is_block(image.parent):
            continue
        if block_image is not None and image.parent is not block_image:
            raise _Unplaceable(
                f"its preceding statement and its block map to different places in the old "
                f"version (lines {old.line(image.origin)} and "
                f"{old.line(block_image.origin)})")
        anchor_block, index = image.parent, image.parent.children.index(image) + 1
        break
    if anchor_block is None:
        if block_image is None or not is_block(block_image):
            raise _Unplaceable("neither a preceding statement nor its enclosing block has a "
                               "counterpart in the old version")
        anchor_block, index = block_image, 0
        if any(not _is_log_statement(new, t) for t in block_new.children[:pos]):
            # Code without a counterpart precedes it: the head of the block would put it
            # before that code's replacement, so go before the next statement that maps.
            following = [mapping.dst(t) for t in block_new.children[pos + 1:]]
            image = next((i for i in following if i is not None and i.parent is block_image),
                         None)
            if image is None:
                raise _Unplaceable("the statements before it have no counterpart in the old "
                                   "version, nor do those after it")
            index = block_image.children.index(image)
    _check_enclosing(new, old, mapping, block_new, anchor_block)
    patched = _rename(new, old, mapping, stmt, s_tree)
    patched = patched.with_changes(leading_lines=[])
    digest = to_tree(patched).digest  # formatting and comments do not count
    image = mapping.dst(s_tree)
    for i, candidate in enumerate(anchor_block.children):
        if candidate.digest == digest:
            return anchor_block.origin, i, None, False
    if image is not None and image.parent is anchor_block:
        at = anchor_block.children.index(image)
        old_names = {n for c, n in _log_calls_in(old, image)}
        new_names = {n for c, n in _log_calls_in(new, s_tree)}
        if new_names and new_names <= old_names:
            return anchor_block.origin, at, None, False
        if to_tree(patched.visit(_Unwrap(new))).digest == image.digest:
            return anchor_block.origin, at, patched.with_changes(
                leading_lines=image.origin.leading_lines), True
    return anchor_block.origin, index, patched, False


def _is_log_statement(parsed: _Parsed, tree: Tree) -> bool:
    node = tree.origin
    return isinstance(node, cst.SimpleStatementLine) and all(
        isinstance(x, cst.Expr) and isinstance(x.value, cst.Call)
        and _is_log_call(parsed, x.value) for x in node.body)


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


def _bound_inside(tree: Tree) -> set[str]:
    bound = set()
    for t in tree.preorder():
        if isinstance(t.origin, cst.CompFor):
            bound.update(n.value for n in to_tree(t.origin.target).preorder()
                         if n.label == "Name")
        if isinstance(t.origin, cst.Param):
            bound.add(t.origin.name.value)
    return bound


def _rename(new: _Parsed, old: _Parsed, mapping: Mapping, stmt: cst.BaseStatement,
            s_tree: Tree) -> cst.BaseStatement:
    """``stmt`` with each variable renamed to what the mapping says the old version calls it."""
    skip = new.aliases | new.log_names | _bound_inside(s_tree)
    inside = {id(t) for t in s_tree.preorder()}
    scope = next((a for a in s_tree.ancestors() if a.label in ("FunctionDef", "Lambda")),
                 new.tree)
    occurrences: dict[str, Counter] = {}
    in_scope = new.variables if scope is new.tree else \
        [t for t in new.variables if scope.contains(t)]
    for t in in_scope:
        if id(t) in inside or t.value in skip:
            continue
        image = mapping.dst(t)
        if image is not None and image.label == "Name":
            occurrences.setdefault(t.value, Counter())[image.value] += 1
    old_names = {t.value for t in old.variables}
    renames = {}
    for t in _variables(s_tree):
        name = t.value
        if name in skip or name in renames:
            continue
        votes = occurrences.get(name)
        if votes:
            renames[name] = votes.most_common(1)[0][0]
        elif name not in old_names and not hasattr(builtins, name):
            raise _Unplaceable(f"variable {name!r} has no counterpart in the old version")
    renames = {k: v for k, v in renames.items() if k != v}
    if not renames:
        return stmt
    targets = {id(t.origin) for t in _variables(s_tree) if t.value in renames}

    class Renamer(cst.CSTTransformer):
        def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
            if id(original) in targets:
                return updated.with_changes(value=renames[original.value])
            return updated

    return stmt.visit(Renamer())


def _add_import(module: cst.Module, new: _Parsed, old: _Parsed,
                statements: list[cst.BaseStatement]) -> cst.Module:
    """Add the new version's flordb import when the old one lacks what the statements use."""
    used = set()
    for stmt in statements:
        used |= {t.value for t in _variables(to_tree(stmt))} & (new.aliases | new.log_names)
    if not used or used <= (old.aliases | old.log_names):
        return module
    imports = [s for s in new.module.body if isinstance(s, cst.SimpleStatementLine) and any(
        isinstance(x, (cst.Import, cst.ImportFrom)) and _binds_flordb(x) for x in s.body)]
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


class _Insert(cst.CSTTransformer):
    """Insert planned statements into the blocks of the old module."""

    def __init__(self, plan: dict[int, list[tuple[int, int, cst.BaseStatement, bool]]],
                 paths: set[int]) -> None:
        super().__init__()
        self.plan = plan
        self.paths = paths  # ancestors of the planned blocks: the only nodes worth visiting

    def on_visit(self, node: cst.CSTNode) -> bool:
        return id(node) in self.paths or id(node) in self.plan

    def on_leave(self, original: cst.CSTNode, updated: cst.CSTNode) -> cst.CSTNode:
        inserts = self.plan.get(id(original))
        if not inserts:
            return updated
        body = list(updated.body)
        for index, _, stmt, replace in inserts:
            if replace:
                body[index] = stmt
        for index, _, stmt, replace in sorted(inserts, key=lambda x: (x[0], x[1]),
                                              reverse=True):
            if not replace:
                body.insert(index, stmt)
        return updated.with_changes(body=body)
