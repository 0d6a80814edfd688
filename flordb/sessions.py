"""What a run records beside its values: lifecycle records in the store's transactions, and
the files and records it read and wrote. :class:`RunSession` is one runtime's;
:class:`ThreadSession` is what the API hands lifecycle records (the calling thread's)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from flordb.errors import RecordingStoppedError

if TYPE_CHECKING:
    from flordb.modes import Mode
    from flordb.project import Project
    from flordb.store.db import Connection
    from flordb.store.io import Direction, IoKind


class SessionHost(Protocol):
    """The runtime, as its session sees it."""

    run_id: int | None
    mode: Mode | None
    project: Project | None

    def ensure_run(self) -> None:
        """Start a run if none is active."""

    def project_root(self) -> Path:
        """The project's root directory."""

    def resolve_project(self) -> Project:
        """The project (located on first use)."""

    def flush(self) -> None:
        """Write the buffered values."""


class RunSession:
    """The :class:`~flordb.lifecycle.session.Session` of one runtime's runs."""

    def __init__(self, host: SessionHost) -> None:
        self.host = host
        self.outputs: dict[str, Path] = {}  # declared output files, hashed at the run's end

    @contextmanager
    def writing(self) -> Iterator[tuple[Connection, int]]:
        """A transaction on the store (its own connection, so any thread may use it) and the
        current run, started if needed: lifecycle records say which run made them. The mode
        decides whether it is kept (a replay rolls it back)."""
        from flordb.store.handle import Store

        host = self.host
        host.ensure_run()
        run_id, mode = host.run_id, host.mode
        if run_id is None or mode is None:
            raise RecordingStoppedError("recording stopped (the store cannot be written): "
                                        "this record is not kept")
        with Store.open(host.project_root(), write=True) as store:
            with mode.transaction(store.conn):
                yield store.conn, run_id

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """A read-only connection on the store, after flushing this process's values."""
        from flordb.store.handle import Store

        self.host.flush()
        with Store.open(self.host.project_root()) as store:
            yield store.conn

    def project_root(self) -> Path:
        return self.host.project_root()

    def resolve_project(self) -> Project:
        return self.host.resolve_project()

    def flush(self) -> None:
        self.host.flush()

    def record_io(self, direction: Direction, kind: IoKind, ref: str, checksum: str | None,
                  nbytes: int | None = None, as_of: float | None = None) -> None:
        """Record an input or output of the current run (started if needed); ``as_of``: the
        cut-off of a read of a feature."""
        host = self.host
        host.ensure_run()
        if host.mode is not None and host.run_id is not None:
            host.mode.record_io(host.run_id, direction, kind, ref, checksum, nbytes, as_of)

    def file_io(self, direction: Direction, path: str | os.PathLike[str]) -> None:
        """``flor.input``/``flor.output``: inputs are hashed now, outputs at the run's end."""
        self.host.ensure_run()
        full = Path(path).resolve()
        project = self.host.project
        ref = project.relative(full) if project is not None else full.as_posix()
        if direction == "output":
            self.outputs[ref] = full
        else:
            self._record_file(direction, ref, full)

    def record_outputs(self) -> None:
        """Hash and record the declared outputs (the run is ending)."""
        for ref, path in self.outputs.items():
            self._record_file("output", ref, path)

    def _record_file(self, direction: Direction, ref: str, full: Path) -> None:
        from flordb.store.io import file_digest

        found = file_digest(full)
        if found is None:
            print(f"flordb: {direction} {ref} is not a file: recorded without a checksum",
                  file=sys.stderr)
        self.record_io(direction, "file", ref, *(found or (None, None)))


class ThreadSession:
    """The session the API gives lifecycle records: each call goes to the calling thread's
    runtime, so a dataset or feature made in one thread and used in another records into the
    run of the thread that uses it."""

    def __init__(self, current: Callable[[], RunSession]) -> None:
        self._current = current

    def writing(self) -> Any:
        return self._current().writing()

    def reading(self) -> Any:
        return self._current().reading()

    def project_root(self) -> Path:
        return self._current().project_root()

    def resolve_project(self) -> Project:
        return self._current().resolve_project()

    def record_io(self, direction: Direction, kind: IoKind, ref: str, checksum: str | None,
                  nbytes: int | None = None, as_of: float | None = None) -> None:
        self._current().record_io(direction, kind, ref, checksum, nbytes, as_of)

    def flush(self) -> None:
        self._current().flush()
