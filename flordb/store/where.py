"""The ``where`` grammar of ``flordb replay``/``plot``/``flor.plot`` and the web view's run
search: comparisons of columns with values, joined by ``and``/``or``/``not``.

    lr > 0.01 and epochs >= 5
    optimizer == "adam" or (note != "" and not done)
    seed in [1, 2, 3] and `acc max` >= 0.9
    "alert" in note                          (a text in a column: a substring of its values)

A name is a column (back-quote names that are not identifiers); values are numbers, strings,
``True``/``False``/``None`` and lists of them. The expression is parsed with :mod:`ast` and
only those nodes are accepted: it never runs code (it comes from a browser too).
"""

from __future__ import annotations

import ast
import operator
import re
from typing import TYPE_CHECKING, Any

from flordb.errors import WhereError

if TYPE_CHECKING:
    import pandas as pd

_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
            ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_QUOTED = re.compile(r"`([^`]*)`")
#: The longest expression taken (one comes from a browser: the work it causes is bounded).
MAX_LENGTH = 4000


def select(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The rows of ``frame`` for which ``where`` holds (a missing value never matches)."""
    quoted: dict[str, str] = {}

    def name_of(match: re.Match[str]) -> str:
        key = f"__col{len(quoted)}__"
        quoted[key] = match.group(1)
        return key

    evaluator = _Evaluator(frame, quoted, where)
    if len(where) > MAX_LENGTH:
        raise evaluator.fail(f"longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(_QUOTED.sub(name_of, where.strip()), mode="eval")
        mask = evaluator.truth(tree.body)  # missing where a value it compares is missing
    except SyntaxError as exc:
        raise evaluator.fail(f"not an expression ({exc.msg})") from None
    except (RecursionError, MemoryError):
        raise evaluator.fail("nested too deeply") from None
    return frame[mask.fillna(False).astype(bool)]


class _Evaluator:
    def __init__(self, frame: pd.DataFrame, quoted: dict[str, str], text: str) -> None:
        self.frame, self.quoted, self.text = frame, quoted, text

    def fail(self, why: str) -> WhereError:
        cols = ", ".join(str(c) for c in self.frame.columns if c != "run_id")
        return WhereError(f"where {self.text!r}: {why} (columns: {cols})")

    def truth(self, node: ast.expr) -> pd.Series:
        import pandas as pd

        if isinstance(node, ast.BoolOp):
            parts = [self.truth(v) for v in node.values]
            out = parts[0]
            for part in parts[1:]:
                out = (out & part) if isinstance(node.op, ast.And) else (out | part)
            return out
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return ~self.truth(node.operand)
        if isinstance(node, ast.Compare):
            out = pd.Series(True, index=self.frame.index, dtype="boolean")
            left = self.operand(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = self.operand(right_node)
                out &= self.compare(op, left, right)
                left = right
            return out
        if isinstance(node, ast.Name):  # a bool column on its own
            column = self.operand(node)
            try:
                return column.astype("boolean")
            except (TypeError, ValueError):
                raise self.fail(f"{ast.unparse(node)!r} is not a condition (compare it)"
                                ) from None
        raise self.fail(f"{ast.unparse(node)!r} is not a comparison")

    def compare(self, op: ast.cmpop, left: Any, right: Any) -> pd.Series:
        import pandas as pd

        if isinstance(op, (ast.In, ast.NotIn)):
            if isinstance(left, str) and isinstance(right, pd.Series):  # a substring
                hit = right.map(lambda v: left in v if isinstance(v, str) else pd.NA)
                hit = hit.astype("boolean")
            elif isinstance(left, pd.Series) and isinstance(right, list):
                hit = left.isin(right).astype("boolean")
                hit[left.isna()] = pd.NA
            else:
                raise self.fail("'in' takes a column and a list, or a text and a column")
            return hit if isinstance(op, ast.In) else ~hit
        fn = _COMPARE.get(type(op))
        if fn is None:
            raise self.fail(f"{type(op).__name__} is not a comparison it knows")
        try:
            result = fn(left, right)
        except TypeError as exc:
            raise self.fail(str(exc)) from None
        if not isinstance(result, pd.Series):
            return pd.Series(bool(result), index=self.frame.index, dtype="boolean")
        result = result.astype("boolean")
        for side in (left, right):
            if isinstance(side, pd.Series):
                result[side.isna()] = pd.NA  # a missing value matches nothing, negated or not
        return result

    def operand(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Name):
            name = self.quoted.get(node.id, node.id)
            if name not in self.frame.columns:
                raise self.fail(f"no column {name!r}")
            return self.frame[name]
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool,
                                                                      type(None))):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) \
                and isinstance(node.operand, ast.Constant) \
                and isinstance(node.operand.value, (int, float)):
            return -node.operand.value
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.operand(e) for e in node.elts]
        raise self.fail(f"{ast.unparse(node)!r} is not a column or a value")
