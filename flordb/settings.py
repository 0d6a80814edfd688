"""Every ``FLORDB_*`` environment variable flordb reads, with its type and default.

A value that does not parse is reported in one line naming the variable, and the default is
used: a typo in the environment must not stop a training script at ``import flordb``.
"""

from __future__ import annotations

import os
import sys

#: name -> (default, description). Numbers must be positive.
NUMBERS: dict[str, tuple[float, str]] = {
    "FLORDB_FLUSH_S": (1.0, "seconds between flushes of logged values"),
    "FLORDB_EPSILON": (1 / 15, "bound on checkpoint cost as a fraction of compute"),
    "FLORDB_MAX_FILE_MB": (20.0, "largest file included in a code snapshot"),
    "FLORDB_CAPTURE_MB": (10.0, "output (stdout, stderr, logging) kept per run"),
}


def number(name: str) -> float:
    """The positive number in ``$name``, else its default (with a one-line notice)."""
    default, what = NUMBERS[name]
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
        if not value > 0:
            raise ValueError
    except ValueError:
        print(f"flordb: ignoring {name}={raw!r} ({what}): not a positive number; using "
              f"{default:g}", file=sys.stderr)
        return default
    return value
