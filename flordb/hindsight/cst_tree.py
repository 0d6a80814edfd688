"""libcst syntax trees as GumTree :class:`~flordb.hindsight.gumtree.Tree` nodes, and the small
libcst helpers propagation and analysis share.

Labels are libcst node class names; values are identifiers, literals and operator tokens.
Whitespace, comments, newlines, parentheses and separators are left out, so formatting never
affects matching; each tree node keeps its libcst node as ``origin``.
"""

from __future__ import annotations

import io
import tokenize
from collections.abc import Iterator

import libcst as cst

from flordb.errors import ParseError
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


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """``node`` and its descendants, pre-order."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def dotted(node: cst.CSTNode | None) -> str:
    """``a.b.c`` for a name or attribute chain, ``""`` for anything else."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{dotted(node.value)}.{node.attr.value}"
    return ""


def source_encoding(data: bytes) -> str:
    """The encoding Python source ``data`` declares (a PEP 263 coding line or a BOM; UTF-8
    otherwise), as the interpreter reads it."""
    try:
        return tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    except SyntaxError:
        return "utf-8"  # an unknown or bad declaration: decoding below says so


def decode_source(data: bytes, what: str) -> str:
    """The text of Python source ``data`` in the encoding it declares; ``what`` names it in
    the :class:`~flordb.errors.ParseError` raised for bytes that are not such text."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise ParseError(f"{what} is not Python source text: {str(exc).splitlines()[0]}"
                         ) from None
    if "\0" in text:
        raise ParseError(f"{what} is not Python source text: it holds NUL bytes")
    return text[1:] if text.startswith("\ufeff") else text


def encode_source(text: str, original: bytes) -> bytes:
    """``text`` (a patched version of the source ``original``) as bytes in the encoding the
    original declares, so that the interpreter reads back the same text; UTF-8, with a
    coding line of its own, where a new statement holds characters that encoding lacks."""
    encoding = source_encoding(original)
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return ("# -*- coding: utf-8 -*-\n" + text).encode() if encoding != "utf-8" \
            else text.encode(errors="surrogateescape")
