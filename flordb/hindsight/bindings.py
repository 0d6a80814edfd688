"""Which names a statement reads and binds, and which are bound on the way to a point.

Propagation uses these for its def-use check: a statement carried into an old version must not
read a name that, in the old version, is not yet bound where it would be inserted (a
statement reading ``loss`` cannot go before the loop that computes it). The analysis is
syntactic and per scope; it errs on the side of *reporting* a placement, never of passing one
that reads an unbound name.
"""

from __future__ import annotations

import builtins

import libcst as cst

from flordb.hindsight.gumtree import Tree

_SCOPES = ("FunctionDef", "ClassDef", "Lambda", "ListComp", "SetComp", "DictComp",
           "GeneratorExp")


def _target_names(node: cst.CSTNode) -> set[str]:
    """Names an assignment target binds (``a``, ``a, (b, *c)``); attributes bind none."""
    if isinstance(node, cst.Name):
        return {node.value}
    if isinstance(node, (cst.Tuple, cst.List)):
        out: set[str] = set()
        for el in node.elements:
            out |= _target_names(el.value)
        return out
    if isinstance(node, cst.StarredElement):
        return _target_names(node.value)
    return set()


def _own_binds(node: cst.CSTNode) -> set[str]:
    """Names ``node`` itself binds in its enclosing scope (not those of its children)."""
    if isinstance(node, cst.AssignTarget):
        return _target_names(node.target)
    if isinstance(node, (cst.AnnAssign, cst.AugAssign)):
        return _target_names(node.target)
    if isinstance(node, cst.NamedExpr):
        return _target_names(node.target)
    if isinstance(node, (cst.For, cst.CompFor)):
        return _target_names(node.target)
    if isinstance(node, cst.AsName):
        return _target_names(node.name)
    if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
        return {node.name.value}
    if isinstance(node, cst.ImportAlias):
        if node.asname is not None:
            return _target_names(node.asname.name)
        head: cst.BaseExpression = node.name
        while isinstance(head, cst.Attribute):
            head = head.value
        return {head.value} if isinstance(head, cst.Name) else set()
    if isinstance(node, cst.Global):
        return {n.name.value for n in node.names}
    return set()


def binds(tree: Tree) -> set[str]:
    """Names bound in the scope of ``tree`` by ``tree`` and everything it contains, not
    looking into nested functions, classes, lambdas or comprehensions (whose names are
    their own; a ``def`` or ``class`` binds its name)."""
    out = _own_binds(tree.origin)
    if tree.label not in _SCOPES:
        for child in tree.children:
            out |= binds(child)
    return out


def inner_names(tree: Tree) -> set[str]:
    """Names bound inside ``tree`` for its own parts: comprehension targets, lambda
    parameters."""
    inner: set[str] = set()
    for t in tree.preorder():
        if isinstance(t.origin, cst.CompFor):
            inner |= _target_names(t.origin.target)
        elif isinstance(t.origin, cst.Param):
            inner.add(t.origin.name.value)
    return inner


def reads(tree: Tree, variables: list[Tree]) -> set[str]:
    """Free names the statement ``tree`` reads, of its ``variables``: less the names it binds
    (an augmented assignment reads its target too) and those bound inside it."""
    inner = inner_names(tree)
    targets = set() if _is_augmented(tree) else statement_binds(tree)
    return {t.value for t in variables
            if t.value is not None and t.value not in inner and t.value not in targets}


def statement_binds(tree: Tree) -> set[str]:
    """Names a simple statement binds by assignment (``err = flor.log(...)`` binds ``err``)."""
    out: set[str] = set()
    for t in tree.preorder():
        if isinstance(t.origin, (cst.AssignTarget, cst.AnnAssign, cst.AugAssign,
                                 cst.NamedExpr)):
            out |= _own_binds(t.origin)
    return out


def _is_augmented(tree: Tree) -> bool:
    return any(isinstance(t.origin, cst.AugAssign) for t in tree.preorder())


def bound_before(block: Tree, index: int) -> set[str]:
    """Names bound on the way to position ``index`` of ``block``. Inside a function, names its
    enclosing scopes bind anywhere count too: the function is called after they are bound, as
    far as syntax can tell."""
    bound = set(dir(builtins)) | {"__file__", "__name__"}
    node: Tree | None = block
    at = index
    while node is not None:
        if node.label in ("Module", "IndentedBlock"):
            for sibling in node.children[:at]:
                bound |= binds(sibling)
        owner = node.parent
        if owner is None:
            break
        # Names the compound statement around the block binds for its body.
        origin = owner.origin
        if isinstance(origin, cst.For):
            bound |= _target_names(origin.target)
        elif isinstance(origin, cst.With):
            for item in origin.items:
                if item.asname is not None:
                    bound |= _target_names(item.asname.name)
        elif isinstance(origin, cst.ExceptHandler) and origin.name is not None:
            bound |= _target_names(origin.name.name)
        elif isinstance(origin, (cst.FunctionDef, cst.Lambda)):
            params = origin.params
            for p in (*params.posonly_params, *params.params, *params.kwonly_params):
                bound.add(p.name.value)
            for star in (params.star_arg, params.star_kwarg):
                if isinstance(star, cst.Param):
                    bound.add(star.name.value)
        if isinstance(origin, (cst.FunctionDef, cst.ClassDef)):
            # Everything the enclosing scopes bind anywhere is visible when it runs.
            outer: Tree | None = owner.parent
            while outer is not None:
                if outer.label in ("Module", "IndentedBlock"):
                    for sibling in outer.children:
                        bound |= binds(sibling)
                outer = outer.parent
            break
        child: Tree = owner
        node = owner.parent
        while node is not None and node.label not in ("Module", "IndentedBlock"):
            child, node = node, node.parent
        if node is None:
            break
        at = node.children.index(child)
    return bound


def touches(tree: Tree) -> set[str]:
    """Names a statement may change: those it binds, the roots of attributes and items it
    assigns or deletes, receivers of method calls, and arguments of calls to anything but a
    builtin."""
    out = binds(tree)
    for t in tree.preorder():
        node = t.origin
        if isinstance(node, (cst.AssignTarget, cst.AugAssign, cst.AnnAssign)):
            out |= _root(node.target)
        elif isinstance(node, cst.Del):
            out |= _root(node.target)
        elif isinstance(node, cst.Call):
            if isinstance(node.func, cst.Attribute):
                out |= _root(node.func.value)
            if not (isinstance(node.func, cst.Name) and hasattr(builtins, node.func.value)):
                for arg in node.args:
                    out |= _root(arg.value)
    return out


def _root(node: cst.CSTNode) -> set[str]:
    """The variable at the root of ``a.b[c].d`` (``a``), or of each element of a tuple."""
    while isinstance(node, (cst.Attribute, cst.Subscript)):
        node = node.value
    if isinstance(node, (cst.Tuple, cst.List)):
        return set().union(*(_root(el.value) for el in node.elements))
    return {node.value} if isinstance(node, cst.Name) else set()
