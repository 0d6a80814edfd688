"""libcst syntax trees as GumTree :class:`~flordb.hindsight.gumtree.Tree` nodes, and the small
libcst helpers propagation and analysis share.

Labels are libcst node class names; values are identifiers, literals and operator tokens.
Whitespace, comments, newlines, parentheses and separators are left out, so formatting never
affects matching; each tree node keeps its libcst node as ``origin``.
"""

from __future__ import annotations

import libcst as cst

from flordb.hindsight.gumtree import Tree

_SKIPPED = (
    cst.BaseParenthesizableWhitespace, cst.Newline, cst.EmptyLine, cst.Comment,
    cst.TrailingWhitespace, cst.Comma, cst.LeftParen, cst.RightParen, cst.LeftSquareBracket,
    cst.RightSquareBracket, cst.LeftCurlyBrace, cst.RightCurlyBrace, cst.Dot, cst.Colon,
    cst.Semicolon, cst.AssignEqual,
)
_VALUED = (cst.Name, cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString,
           cst.FormattedStringText)


def to_tree(node: cst.CSTNode) -> Tree:
    """The GumTree view of ``node`` and its descendants."""
    children = [to_tree(c) for c in node.children if not isinstance(c, _SKIPPED)]
    value = node.value if isinstance(node, _VALUED) else None
    return Tree(type(node).__name__, value, children, origin=node)


def is_block(tree: Tree) -> bool:
    """Whether ``tree`` holds a statement list (a module or an indented block)."""
    return tree.label in ("Module", "IndentedBlock")


#: The module names a script may import flordb under.
FLORDB_MODULES = ("flordb", "flor")


def dotted(node: cst.CSTNode | None) -> str:
    """``a.b.c`` for a name or attribute chain, ``""`` for anything else."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{dotted(node.value)}.{node.attr.value}"
    return ""
