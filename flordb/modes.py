"""What recording and replaying do differently, as one protocol.

The runtime runs a script's ``flor`` calls the same way in both modes; a :class:`Mode` answers
every question where they differ: where a run comes from (a new row, or the recorded run a
replay unit fills), what runs beside it (output capture, the code snapshot), what
``flor.arg`` returns (``--kwargs`` or the recorded value), which id a loop instance gets and
how ``flor.loop`` iterates, what a flush writes (everything, or the unit's names in its
window), what ``flor.commit`` and the exit do, whether lifecycle records and inputs are kept,
and what a store fault means. :class:`RecordMode` is the recording one;
:class:`flordb.replaying.ReplayMode` the replaying one. The runtime chooses once per process.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Generator, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from flordb import capture as _capture
from flordb import kwargs as _kwargs
from flordb import settings
from flordb.recorder import SCALARS, element
from flordb.store.db import write_transaction
from flordb.store.redact import REDACTED, is_secret
from flordb.store.writer import Batch, RunWriter, Status

if TYPE_CHECKING:
    from flordb.loops import Frame, RunHost
    from flordb.project import Project
    from flordb.store.db import Connection
    from flordb.store.io import Direction, IoKind


class Mode(Protocol):
    """The part of a run that recording and replaying do differently."""

    def begin(self, project: Project) -> tuple[int, str | None]:
        """Start (or attach to) a run; returns its ``run_id`` and ``tstamp``."""

    def on_begin(self, host: RunHost) -> None:
        """Start what runs beside the run (output capture, the code snapshot)."""

    def arg(self, name: str, default: Any) -> Any:
        """The value of ``flor.arg(name, default)``."""

    def loop_id(self, parent: Frame, name: str) -> int:
        """The id of the loop instance ``name`` being entered under ``parent``."""

    def loop(self, host: RunHost, name: str, iterable: Iterable[Any]
             ) -> Generator[Any, None, None]:
        """``flor.loop(name, iterable)``."""

    def flush(self, batch: Batch) -> None:
        """Write ``batch`` (or the part of it this mode keeps) in one transaction."""

    def commit(self, host: RunHost) -> None:
        """``flor.commit()``, before the run ends."""

    def end_cell(self, host: RunHost, failed: bool) -> None:
        """After a notebook cell that logged: end its run (or not)."""

    def ending(self) -> None:
        """The run is about to end: stop what ran beside it."""

    def end(self, status: Status) -> int:
        """End the run with ``status``; returns the number of values it holds."""

    def at_exit(self, host: RunHost) -> None:
        """The process exits."""

    def on_store_fault(self, exc: BaseException) -> None:
        """The store failed (full disk, read-only): return to stop recording, or raise."""

    def transaction(self, conn: Connection) -> AbstractContextManager[Any]:
        """The transaction a lifecycle record is written in (kept, or rolled back)."""

    def record_io(self, run_id: int, direction: Direction, kind: IoKind, ref: str,
                  checksum: str | None, nbytes: int | None, as_of: float | None) -> None:
        """Record an input or output of the run (or not)."""

    def close(self) -> None:
        """Release the store connection."""


class RecordMode:
    """Recording: a new run row per run, ``--kwargs`` for args, sequential loop ids, output
    captured and the code snapshot recorded beside each run."""

    def __init__(self, root: Path, kwargs: dict[str, str], kwargs_read: set[str],
                 argv: list[str] | None = None) -> None:
        self.writer = RunWriter(root)
        self.kwargs = kwargs
        self.kwargs_read = kwargs_read
        self.argv = argv  # the command as typed, --kwargs included (default: sys.argv)
        self.next_loop_id = 1
        self.capture: _capture.Capture | None = None  # what the run prints and logs
        self._provenance: threading.Thread | None = None
        self._provenance_error: BaseException | None = None
        self._stopped = False  # recording stopped: what fails after that was said once

    @property
    def conn(self) -> Any:
        """The store connection of this process's runs."""
        return self.writer.conn

    def begin(self, project: Project) -> tuple[int, str | None]:
        from flordb.project import script_name

        self.next_loop_id = 1
        return self.writer.begin(project.projid, script_name(project),
                                 list(self.argv or sys.argv), os.getcwd(),
                                 settings.read().parent_run)

    def on_begin(self, host: RunHost) -> None:
        if host.main and _capture.enabled():
            self.capture = _capture.Capture()
            self.capture.start()
        from flordb.project import script_name

        p = host.resolve_project()
        self._provenance_error = None
        self._provenance = threading.Thread(
            target=self._record_provenance,
            args=(p.root, p.in_git, p.projid, host.tstamp, script_name(p), host.run_id),
            name="flordb-provenance", daemon=True)
        self._provenance.start()
        for name, value in host.sticky_args.items():
            host.recorder.add(host.recorder.top, name, REDACTED if is_secret(name) else value,
                              "arg")

    def _record_provenance(self, *args: Any) -> None:
        from flordb.store import provenance

        try:
            provenance.record(*args)
        except BaseException as exc:  # reported when the run ends, never dropped
            self._provenance_error = exc

    def arg(self, name: str, default: Any) -> Any:
        return kwarg(self.kwargs, self.kwargs_read, name, default)

    def loop_id(self, parent: Frame, name: str) -> int:
        loop_id = self.next_loop_id
        self.next_loop_id += 1
        return loop_id

    def loop(self, host: RunHost, name: str, iterable: Iterable[Any]
             ) -> Generator[Any, None, None]:
        return record_loop(host, name, iterable)

    def flush(self, batch: Batch) -> None:
        if self.capture is not None:
            batch.output.extend(self.capture.take())
        if batch:
            self.writer.flush(batch)

    def commit(self, host: RunHost) -> None:
        """Nothing beyond ending the run."""

    def end_cell(self, host: RunHost, failed: bool) -> None:
        host.sticky_args.update(host.args)
        host.end_run("failed" if failed else "completed")

    def ending(self) -> None:
        if self.capture is not None:
            self.capture.stop()  # its last lines go with the final flush

    def end(self, status: Status) -> int:
        self.capture = None  # stopped by ending(); its last lines went with the final flush
        if self._provenance is not None:
            self._provenance.join()
            self._provenance = None
        n = self.writer.end(status)
        error, self._provenance_error = self._provenance_error, None
        if error is not None and not self._stopped:
            why = (str(error).strip().splitlines() or [""])[0]
            if isinstance(error, ImportError) and "git" in why.lower():
                why = "git is not installed or not on PATH (" + why + ")"
            print(f"flordb: could not record the code snapshot/environment of that run: "
                  f"{type(error).__name__}: {why}", file=sys.stderr)
        return n

    def at_exit(self, host: RunHost) -> None:
        if host.run_id is not None:
            host.end_run("failed" if host.failed else "completed")
        unused = sorted(set(self.kwargs) - self.kwargs_read)
        if unused:
            print(f"flordb: --kwargs never read by flor.arg: {', '.join(unused)}",
                  file=sys.stderr)

    def on_store_fault(self, exc: BaseException) -> None:
        """Recording stops (said in one line); the script goes on."""
        self._stopped = True

    def transaction(self, conn: Connection) -> AbstractContextManager[Any]:
        return write_transaction(conn)

    def record_io(self, run_id: int, direction: Direction, kind: IoKind, ref: str,
                  checksum: str | None, nbytes: int | None, as_of: float | None) -> None:
        from flordb.store import io

        io.record(self.conn, run_id, direction, kind, ref, checksum, nbytes, as_of)

    def close(self) -> None:
        self.writer.close()


def record_loop(host: RunHost, name: str, iterable: Iterable[Any]
                ) -> Generator[Any, None, None]:
    """``flor.loop`` while recording: each iteration makes its frame current and records its
    element; outermost iterations end at a boundary (checkpoints, flushes)."""
    fr = host.enter_loop(name, iterable)
    rec = host.recorder
    n = 0
    values = fr.values
    try:
        # Two copies of the loop: only an outermost iteration ends at a boundary, and the
        # test for it stays out of the inner loops' hot path.
        if fr.depth == 1:
            for x in iterable:
                fr.i = n
                n += 1
                rec.frame = fr
                if values is not None:
                    values.append(x if type(x) in SCALARS else element(x))
                yield x
                if rec.flush_due or host.enrolled:
                    host.outer_boundary(fr, n)
        else:
            for x in iterable:
                fr.i = n
                n += 1
                rec.frame = fr
                if values is not None:
                    values.append(x if type(x) in SCALARS else element(x))
                yield x
                if rec.flush_due:
                    host.flush()
    finally:
        host.exit_loop(fr, n)


def kwarg(kwargs: dict[str, str], read: set[str], name: str, default: Any) -> Any:
    """``--kwargs name=...`` cast to the type of ``default`` (noted as read), else
    ``default``."""
    if name in kwargs:
        read.add(name)
        return _kwargs.cast(name, kwargs[name], default)
    return default
