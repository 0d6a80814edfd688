"""``--kwargs name=value ...`` on the command line: taken out of ``sys.argv``, cast on read."""

from __future__ import annotations

import ast
import os
import sys
from typing import Any, NoReturn

from flordb.errors import ArgCastError

FLAG = "--kwargs"
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def extract(argv: list[str]) -> dict[str, str]:
    """Remove ``--kwargs a=1 b=x`` from ``argv`` in place and return ``{"a": "1", "b": "x"}``.

    The pairs run from the flag to the first token that is not ``name=value``; every other
    argument stays for the script's own parser. The flag may appear more than once.
    """
    found: dict[str, str] = {}
    i = 1
    while i < len(argv):
        if argv[i] != FLAG:
            i += 1
            continue
        j = i + 1
        while j < len(argv) and "=" in argv[j] and not argv[j].startswith("-"):
            name, _, text = argv[j].partition("=")
            if not name.isidentifier():
                raise ArgCastError(f"{FLAG} {argv[j]!r}: {name!r} is not a valid name")
            found[name] = text
            j += 1
        del argv[i:j]
    return found


def cast(name: str, text: str, default: Any) -> Any:
    """``text`` as the type of ``default`` (bool, int, float, str, or a literal); with no
    default (``None``) the text itself."""
    kind = type(default)

    def refused(why: object) -> ArgCastError:
        return ArgCastError(f"{FLAG} {name}={text!r}: cannot cast to {kind.__name__} (the type "
                            f"of the default of flor.arg({name!r}, {default!r})): {why}")

    if kind is bool:
        low = text.strip().lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise refused("expected one of true/false/1/0/yes/no/on/off")
    if kind is str or default is None:
        return text  # no default to go by: the text as given, as FlorDB returns it
    try:
        value = int(text) if kind is int else float(text) if kind is float \
            else ast.literal_eval(text)
    except (ValueError, SyntaxError, RecursionError, MemoryError) as exc:
        raise refused(exc) from None
    if not isinstance(value, kind):
        raise refused(f"got a {type(value).__name__}")
    return value


def exit_with(error: ArgCastError) -> NoReturn:
    """Answer bad ``--kwargs`` as argparse answers a bad option: one line on stderr naming
    the program and the problem, then exit status 2."""
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    print(f"{prog}: error: {error}", file=sys.stderr)
    raise SystemExit(2)
