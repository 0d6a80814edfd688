"""Every ``FLORDB_*`` environment variable flordb reads, declared once with its type, default
and meaning; :func:`read` parses them all into one :class:`Settings`.

The runtime reads them when it is created (the process's, or a thread's), and the store,
snapshot and capture code each time they start their work. A value that does not parse is
reported once, in one line naming the variable and the value, and the default is used: a typo
in the environment must not stop a training script.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["number", "flag", "path", "text", "id"]


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, kind, default and what it sets."""

    name: str
    field: str
    kind: Kind
    default: float | bool | None
    help: str


VARIABLES: tuple[Variable, ...] = (
    Variable("FLORDB_FLUSH_S", "flush_s", "number", 1.0,
             "seconds between flushes of logged values"),
    Variable("FLORDB_EPSILON", "epsilon", "number", 1 / 15,
             "bound on checkpoint cost as a fraction of compute"),
    Variable("FLORDB_MAX_FILE_MB", "max_file_mb", "number", 20.0,
             "largest file included in a code snapshot"),
    Variable("FLORDB_CAPTURE_MB", "capture_mb", "number", 10.0,
             "output (stdout, stderr, logging) kept per run"),
    Variable("FLORDB_ECHO", "echo", "flag", True,
             "echo args, top-level values and loop progress to the terminal"),
    Variable("FLORDB_CAPTURE", "capture", "flag", True,
             "keep what a run prints and logs with `logging`"),
    Variable("FLORDB_HOME", "home", "path", None,
             "flor.HOMEDIR, where FlorDB-layout checkpoint files appear (default ~/.flor)"),
    Variable("FLORDB_ROOT", "root", "path", None,
             "the project root (default: the git work tree around the working directory)"),
    Variable("FLORDB_DIR", "store_dir", "path", None,
             "the store directory (default: <project root>/.flor)"),
    Variable("FLORDB_PROJID", "projid", "text", None,
             "the project's name (default: the root directory's name)"),
    Variable("FLORDB_REPLAY", "replay_unit", "id", None,
             "set by flordb replay in its children: the work unit the process runs"),
    Variable("FLORDB_PARENT_RUN", "parent_run", "id", None,
             "set by a parent run in a child process it starts: the parent's run id"),
)


@dataclass(frozen=True)
class Settings:
    """The parsed values of :data:`VARIABLES`."""

    flush_s: float
    epsilon: float
    max_file_mb: float
    capture_mb: float
    echo: bool
    capture: bool
    home: Path | None
    root: Path | None
    store_dir: Path | None
    projid: str | None
    replay_unit: int | None
    parent_run: int | None

    @property
    def home_dir(self) -> Path:
        """``flor.HOMEDIR``: ``$FLORDB_HOME``, else ``~/.flor``."""
        return self.home or Path.home() / ".flor"


DEFAULTS = {v.name: v.default for v in VARIABLES}
#: What every flordb variable's name starts with.
PREFIX = "FLORDB_"
_BY_FIELD = {v.field: v for v in VARIABLES}


def name(field: str) -> str:
    """The environment variable that sets :class:`Settings` field ``field``."""
    return _BY_FIELD[field].name


def default(field: str) -> float | bool | None:
    """The default of :class:`Settings` field ``field``."""
    return _BY_FIELD[field].default


def environ(**values: object) -> dict[str, str]:
    """Environment entries that give a child process these settings (by field name; flags
    as ``1``/``0``)."""
    return {name(f): ("1" if v else "0") if isinstance(v, bool) else str(v)
            for f, v in values.items()}


def is_flordb_variable(variable: str) -> bool:
    """Whether ``variable`` is one of flordb's own (a run's recorded environment leaves them
    out)."""
    return variable.startswith(PREFIX)


def read(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings in ``environ`` (default: this process's environment)."""
    env = os.environ if environ is None else environ
    values = {v.field: _parse(v, env.get(v.name)) for v in VARIABLES}
    return Settings(**values)  # type: ignore[arg-type]  # one field per variable, by kind


def _parse(var: Variable, raw: str | None) -> float | bool | Path | str | int | None:
    if raw is None or raw == "":
        return var.default
    if var.kind == "path":
        return Path(raw)
    if var.kind == "text":
        return raw
    if var.kind == "flag":
        if raw.strip().lower() in ("0", "false", "no", "off"):
            return False
        if raw.strip().lower() in ("1", "true", "yes", "on"):
            return True
        return _bad(var, raw, "not 0/1, true/false, yes/no or on/off")
    try:
        if var.kind == "id":
            ident = int(raw)
            if ident > 0:
                return ident
            return _bad(var, raw, "not a positive integer")
        value = float(raw)
        if value > 0:
            return value
    except ValueError:
        pass
    return _bad(var, raw, "not a positive number" if var.kind == "number" else
                "not a positive integer")


def _bad(var: Variable, raw: str, why: str) -> float | bool | None:
    if (var.name, raw) not in _reported:  # once per process, however often it is read
        _reported.add((var.name, raw))
        shown = "unset" if var.default is None else f"{var.default:g}" \
            if isinstance(var.default, float) else str(var.default)
        print(f"flordb: ignoring {var.name}={raw!r} ({var.help}): {why}; using {shown}",
              file=sys.stderr)
    return var.default


_reported: set[tuple[str, str]] = set()
