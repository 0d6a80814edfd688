"""One model of a script, shared by propagation and the replay analysis: one parse, one LibCST
:class:`~libcst.metadata.MetadataWrapper`, and flordb's calls recognised once: by the names
the imports bind (``import flordb as flor``, ``import flor``, ``from flordb import log as
record``, FlorDB 2's ``from flor import Flor``), and, where the script rebinds such a name,
through LibCST's qualified names (a parameter that happens to be called ``flor`` is not
flordb). Scopes tell a comprehension's or lambda's own variables from the script's."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import cached_property
from typing import Any

import libcst as cst
from libcst.metadata import (
    CodeRange,
    ComprehensionScope,
    ExpressionContext,
    ExpressionContextProvider,
    FunctionScope,
    MetadataWrapper,
    PositionProvider,
    QualifiedName,
    QualifiedNameProvider,
    QualifiedNameSource,
    Scope,
    ScopeProvider,
)

from flordb.errors import ParseError
from flordb.hindsight.cst_tree import FLORDB_MODULES, dotted, walk


class Script:
    """A parsed script: its module, positions, expression contexts, qualified names, and the
    names its imports bind to flordb."""

    def __init__(self, source: str, what: str = "the script") -> None:
        try:
            module = cst.parse_module(source)
        except cst.ParserSyntaxError as exc:
            raise ParseError(f"{what} does not parse: {str(exc).splitlines()[0]} "
                             f"(line {exc.raw_line})") from None
        # unsafe_skip_copy keeps node identity: callers key their own tables by id(node).
        self.wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        self.module = self.wrapper.module

    # ------------------------------------------------------------------ metadata
    @cached_property
    def nodes(self) -> list[cst.CSTNode]:
        """Every node, pre-order (one walk: libcst computes a node's children on each ask;
        a caller that has walked the module already may set this)."""
        return list(walk(self.module))

    @cached_property
    def positions(self) -> Mapping[cst.CSTNode, CodeRange]:
        """Where each node starts and ends."""
        return self.wrapper.resolve(PositionProvider)

    @cached_property
    def contexts(self) -> Mapping[cst.CSTNode, ExpressionContext]:
        """Whether each name is loaded, stored or deleted."""
        return self.wrapper.resolve(ExpressionContextProvider)

    @cached_property
    def qualified_names(self) -> Mapping[cst.CSTNode, Collection[QualifiedName]]:
        """What each name and attribute refers to (``flordb.log`` for ``flor.log``)."""
        return self.wrapper.resolve(QualifiedNameProvider)

    @cached_property
    def scopes(self) -> Mapping[cst.CSTNode, Scope | None]:
        """The scope each node is in."""
        return self.wrapper.resolve(ScopeProvider)

    def bound_in_expression(self, name: cst.Name) -> bool:
        """Whether ``name`` is a variable of a comprehension or a lambda it sits in (``i`` in
        ``[f(i) for i in xs]``), not of the statement's scope."""
        scope = self.scopes.get(name)
        if isinstance(scope, ComprehensionScope) or (
                isinstance(scope, FunctionScope) and isinstance(scope.node, cst.Lambda)):
            return any(a.scope is scope for a in scope.assignments[name.value])
        return False

    def line(self, node: cst.CSTNode) -> int:
        """1-based line where ``node`` starts."""
        return self.positions[node].start.line

    def end_line(self, node: cst.CSTNode) -> int:
        """1-based line where ``node`` ends."""
        return self.positions[node].end.line

    # ------------------------------------------------------------------ flordb
    def flor_function(self, node: cst.CSTNode) -> str | None:
        """The flordb function ``node`` calls (``"log"``, ``"loop"``, ...), or None.

        By the names the script's imports bind to flordb; where the script also binds one of
        those names otherwise (a parameter, an assignment), by what the name refers to at the
        call (LibCST's qualified names: exact, and costly on a large file, so only then).
        """
        if not isinstance(node, cst.Call):
            return None
        found = self._by_import_names(node.func)
        if found is None or not self._shadowed:
            return found
        names: Any = self.qualified_names.get(node.func)
        if names is None:  # a node made after the parse (a renamed copy): by import names
            return found
        if callable(names):  # the provider computes each node's names on demand (LazyValue)
            names = names()
        for qn in names:
            if qn.source is QualifiedNameSource.IMPORT:
                root, _, rest = qn.name.partition(".")
                if root in FLORDB_MODULES and rest:
                    return rest.rsplit(".", 1)[-1]
        return None

    @cached_property
    def _shadowed(self) -> bool:
        """Whether the script binds a name its flordb imports bind, other than by them."""
        wanted = set(self.flordb_imports)
        return bool(wanted) and any(bound & wanted for bound in map(_binds, self.nodes))

    def _by_import_names(self, func: cst.BaseExpression) -> str | None:
        full = dotted(func)
        head, _, rest = full.partition(".")
        target = self.flordb_imports.get(head)
        if target is None:
            return None
        path = f"{target}.{rest}" if rest else target
        return path.rsplit(".", 1)[-1] if "." in path else None

    @cached_property
    def flordb_imports(self) -> dict[str, str]:
        """Each name the script's imports bind to flordb or something in it -> what it names
        (``{"flor": "flordb", "record": "flordb.log", "Flor": "flor.Flor"}``)."""
        out: dict[str, str] = {}
        for node in self.nodes:
            if isinstance(node, cst.Import):
                for alias in node.names:
                    name = dotted(alias.name)
                    if name.split(".")[0] in FLORDB_MODULES:
                        bound = dotted(alias.asname.name) if alias.asname else \
                            name.split(".")[0]
                        out[bound] = name if alias.asname else name.split(".")[0]
            elif isinstance(node, cst.ImportFrom) and node.module is not None \
                    and not node.relative and dotted(node.module).split(".")[0] in FLORDB_MODULES \
                    and not isinstance(node.names, cst.ImportStar):
                for alias in node.names:
                    name = dotted(alias.name)
                    bound = dotted(alias.asname.name) if alias.asname else name
                    out[bound] = f"{dotted(node.module)}.{name}"
        return out

    @cached_property
    def module_aliases(self) -> set[str]:
        """Names bound to the flordb module itself."""
        return {n for n, q in self.flordb_imports.items() if q in FLORDB_MODULES}

    @cached_property
    def log_names(self) -> set[str]:
        """Names bound to ``flordb.log`` itself (``from flordb import log``)."""
        return {n for n, q in self.flordb_imports.items()
                if q.split(".")[0] in FLORDB_MODULES and q.split(".")[1:] == ["log"]}



def _binds(node: cst.CSTNode) -> set[str]:
    """The names ``node`` itself binds, other than by importing flordb."""
    target: cst.CSTNode | None = None
    if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Param)):
        return {node.name.value}
    if isinstance(node, (cst.AssignTarget, cst.AnnAssign, cst.AugAssign, cst.For, cst.CompFor,
                         cst.NamedExpr)):
        target = node.target
    elif isinstance(node, cst.WithItem) and node.asname is not None:
        target = node.asname.name
    elif isinstance(node, cst.ExceptHandler) and node.name is not None:
        target = node.name.name
    elif isinstance(node, cst.Import) or (isinstance(node, cst.ImportFrom)
                                          and not isinstance(node.names, cst.ImportStar)):
        module = dotted(node.module) if isinstance(node, cst.ImportFrom) else None
        out = set()
        for alias in node.names:  # type: ignore[union-attr]  # ImportStar excluded above
            if (module or dotted(alias.name)).split(".")[0] in FLORDB_MODULES:
                continue
            out.add(dotted(alias.asname.name) if alias.asname else
                    dotted(alias.name).split(".")[0])
        return out
    if target is None:
        return set()
    return {n.value for n in walk(target) if isinstance(n, cst.Name)}
