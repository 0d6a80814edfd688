"""Writing one run: its row, its batched values, its end; and marking dead runs."""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from flordb.store import redact
from flordb.store.db import connect_writer, inserted_id, new_uid, write_transaction


class Chunk(NamedTuple):
    """A sealed series: ``n`` numeric values of ``name`` in one loop instance."""

    name: str
    loop_id: int
    seq: int
    dtype: str  # "f8" or "i8"
    n: int
    iters: bytes  # little-endian int64 iterations
    vals: bytes  # little-endian float64 or int64 values


#: A record is a logged value or an arg.
RecordKind = Literal["log", "arg"]
#: How a run ended (``running`` until it does).
Status = Literal["completed", "failed", "killed"]


class Record(NamedTuple):
    """One value stored with its type (anything but a hot float or int) or one arg."""

    loop_id: int
    iteration: int
    seq: int
    name: str
    value: object
    vtype: str
    text: str | None  # the repr of a pickled value
    kind: RecordKind


@dataclass
class Batch:
    """Everything one flush writes, in one transaction."""

    loops_new: list[tuple[int, int, int, str, int, int | None, int | None]] = field(
        default_factory=list)
    loops_ended: list[tuple[int, int]] = field(default_factory=list)  # (iterations, loop_id)
    loop_values: list[tuple[int, int, str]] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    timing: list[tuple] = field(default_factory=list)
    output: list[tuple] = field(default_factory=list)  # flordb.capture.Line rows

    def __bool__(self) -> bool:
        return bool(self.loops_new or self.loops_ended or self.loop_values or self.chunks
                    or self.records or self.timing or self.output)

    def n_values(self) -> int:
        return sum(c.n for c in self.chunks) + len(self.records)


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux), to tell a live run from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def pid_alive(pid: int, start: str | None) -> bool:
    """Whether process ``pid`` (started at ``start``, when known) still exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return start is None or process_start_time(pid) in (None, start)


def dead_runs(conn: sqlite3.Connection) -> set[int]:
    """The ``running`` runs of this host whose process no longer exists: killed, whether or
    not a writer has marked them yet (readers show them so without writing)."""
    rows = conn.execute(
        "SELECT run_id, pid, pid_start FROM runs WHERE status = 'running' AND host = ?",
        (socket.gethostname(),)).fetchall()
    return {r for r, pid, start in rows if pid is not None and not pid_alive(pid, start)}


def reap_dead_runs(conn: sqlite3.Connection) -> int:
    """Mark ``killed`` every ``running`` run of this host whose process no longer exists."""
    dead = [(r,) for r in sorted(dead_runs(conn))]
    if dead:
        with write_transaction(conn):
            conn.executemany(
                "UPDATE runs SET status = 'killed' WHERE run_id = ? AND status = 'running'",
                dead)
    return len(dead)


class RunWriter:
    """Owns the store connection of a recording process and the row of its current run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conn = connect_writer(root)
        reap_dead_runs(self.conn)
        self.run_id: int | None = None

    def begin(self, projid: str, filename: str, argv: list[str], cwd: str,
              parent_run: int | None = None) -> tuple[int, str]:
        """Insert the run row; returns ``(run_id, tstamp)``, tstamp unique in the project."""
        now = _dt.datetime.now()
        pid = os.getpid()
        while True:
            tstamp = now.isoformat(timespec="microseconds")
            try:
                with write_transaction(self.conn):
                    cur = self.conn.execute(
                        "INSERT INTO runs (uid, projid, tstamp, filename, argv, cwd, status,"
                        " started, pid, pid_start, host, parent_run)"
                        " VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                        (new_uid(), projid, tstamp, filename, json.dumps(redact.argv(argv)),
                         cwd, time.time(), pid, process_start_time(pid),
                         socket.gethostname(), parent_run))
                self.run_id = inserted_id(cur)
                return self.run_id, tstamp
            except sqlite3.IntegrityError:
                now += _dt.timedelta(microseconds=1)  # same microsecond as another run

    def flush(self, batch: Batch) -> None:
        """Write ``batch`` for the current run in one transaction."""
        run = self.run_id
        c = self.conn
        with write_transaction(c):
            if batch.loops_new:
                c.executemany(
                    "INSERT INTO loops (run_id, loop_id, parent_id, parent_iter, name, depth,"
                    " range_start, range_step) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run, *row) for row in batch.loops_new])
            if batch.loops_ended:
                c.executemany(
                    "UPDATE loops SET iterations = ? WHERE run_id = ? AND loop_id = ?",
                    [(n, run, loop_id) for n, loop_id in batch.loops_ended])
            if batch.loop_values:
                c.executemany(
                    "INSERT OR REPLACE INTO loop_values (run_id, loop_id, first_iter, vals)"
                    " VALUES (?, ?, ?, ?)", [(run, *row) for row in batch.loop_values])
            if batch.chunks:
                c.executemany(
                    "INSERT INTO series (run_id, name, loop_id, seq, dtype, n, iters, vals)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [(run, *row) for row in batch.chunks])
            if batch.records:
                c.executemany(
                    "INSERT INTO records (run_id, loop_id, iter, seq, name, value, vtype, repr,"
                    " kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run, *row) for row in batch.records])
            if batch.output:
                c.executemany(
                    "INSERT INTO run_output (run_id, seq, at, stream, level, logger, text)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)", [(run, *row) for row in batch.output])
            if batch.timing:
                c.executemany(
                    "INSERT OR REPLACE INTO loop_timing (run_id, name, depth, instances,"
                    " iterations, seconds, iter_mean_s, iter_std_s, checkpoints, checkpoint_s)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run, *row) for row in batch.timing])
            c.execute("UPDATE runs SET n_values = n_values + ? WHERE run_id = ?",
                      (batch.n_values(), run))

    def end(self, status: Status) -> int:
        """Mark the current run ended with ``status``; returns how many values it holds."""
        with write_transaction(self.conn):
            self.conn.execute("UPDATE runs SET status = ?, ended = ? WHERE run_id = ?",
                              (status, time.time(), self.run_id))
            n = self.conn.execute("SELECT n_values FROM runs WHERE run_id = ?",
                                  (self.run_id,)).fetchone()[0]
        self.run_id = None
        return int(n)

    def close(self) -> None:
        self.conn.close()


class ReplayWriter:
    """Writes a replay unit's values into the replayed run, pending until the unit completes.

    Loop rows, timing and the run row are the recording's and are left alone.
    """

    def __init__(self, root: Path, run_id: int, unit_id: int) -> None:
        self.conn = connect_writer(root)
        self.run_id = run_id
        self.unit_id = unit_id

    def flush(self, batch: Batch) -> None:
        """Write the values of ``batch`` in one transaction."""
        run, unit, c = self.run_id, self.unit_id, self.conn
        with write_transaction(c):
            c.executemany(
                "INSERT INTO series (run_id, name, loop_id, seq, dtype, n, iters, vals, source,"
                " unit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                [(run, *row, unit) for row in batch.chunks])
            c.executemany(
                "INSERT INTO records (run_id, loop_id, iter, seq, name, value, vtype, repr, kind,"
                " source, unit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                [(run, *row, unit) for row in batch.records])

    def report(self, checks: str) -> None:
        """Store what the unit's checks against the recording found (JSON)."""
        with write_transaction(self.conn):
            self.conn.execute("UPDATE replay_units SET checks = ? WHERE unit_id = ?",
                              (checks, self.unit_id))

    def close(self) -> None:
        self.conn.close()
