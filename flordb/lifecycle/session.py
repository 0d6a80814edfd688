"""What the lifecycle records need from the process that makes them: a :class:`Session`.

The API passes the calling thread's runtime; anything with these methods will do (a test, or
a service recording on behalf of several runs).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from flordb.store.db import Connection

if TYPE_CHECKING:
    from flordb.project import Project
    from flordb.store.io import Direction, IoKind


class Session(Protocol):
    """The store, the project and the run that lifecycle records are made by."""

    def writing(self) -> AbstractContextManager[tuple[Connection, int]]:
        """A write transaction and the current run (started if needed)."""

    def reading(self) -> AbstractContextManager[Connection]:
        """A read-only connection, after this process's values are flushed."""

    def project_root(self) -> Path:
        """The project's root directory."""

    def resolve_project(self) -> Project:
        """The project (root, id, whether it is in git)."""

    def record_io(self, direction: Direction, kind: IoKind, ref: str, checksum: str | None,
                  nbytes: int | None = None, as_of: float | None = None) -> None:
        """Record an input or output of the current run (``as_of``: a read's cut-off)."""

    def flush(self) -> None:
        """Write this process's buffered values."""
