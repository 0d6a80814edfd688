"""Replay bookkeeping in the store: replays, their work units, and completing a unit.

A unit's child process reads its :class:`Directive` from ``replay_units`` and writes its values
with ``source = 'pending'`` and its ``unit``. Only the replay driver ends a unit: on success it
turns the pending values into ``'replay'``/``'recheck'`` and marks the unit ``done`` in one
transaction; on failure it deletes them. A replay that dies therefore leaves pending values that
no reader shows, and the next replay deletes them (:func:`clear_stale`) and does the unit again.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from dataclasses import asdict, dataclass, field, fields, replace

from flordb import settings
from flordb.errors import ReplayUnitError
from flordb.store.db import inserted_id, write_transaction
from flordb.store.writer import pid_alive

#: Environment variable that names the unit a replay's child process runs.
UNIT_ENV = settings.name("replay_unit")
#: Exit status of a unit's child whose live state differed from the recording's checkpoint.
DIVERGED_EXIT = 3


@dataclass
class StateDivergence:
    """The first boundary where a unit's live state differed from the recording."""

    iteration: int
    places: int  # how many places differ
    path: str  # the worst of them: enrolled object and where inside it
    max_abs_diff: float | None
    detail: str


@dataclass
class UnitChecks:
    """What a unit's child found comparing its live state with the recording's checkpoints:
    the boundaries that agreed, and the one that did not."""

    agreed: list[int] = field(default_factory=list)
    diverged: StateDivergence | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> UnitChecks:
        data = json.loads(text) if text else {}
        diverged = data.get("diverged")
        return cls(list(data.get("agreed", [])),
                   StateDivergence(**diverged) if diverged else None)


@dataclass
class Directive:
    """What one unit's child process does; see ``docs/replay.md``.

    The *main loop* is the run's first outermost ``flor.loop`` instance; a unit records the
    values of its iterations ``start <= i < stop`` (and, when it owns them, the top-level values
    logged before and after that loop).
    """

    run_id: int
    new_names: list[str]
    compare_names: list[str]
    main_loop_id: int | None
    start: int
    stop: int
    restore_from: int | None  # checkpoint to fast-forward to (<= start); None: run from 0
    skip_inner: bool = False  # skip inner loops of iterations whose next checkpoint exists,
    #                           restoring that checkpoint where the skipped loop ends
    owns_prefix: bool = True
    owns_suffix: bool = True
    run_suffix: bool = True  # keep executing after the main loop (else exit there)
    verify: bool = False  # a cross-check: its values are compared, never shown
    stop_at_inner: bool = False  # exit where the last iteration's first inner loop starts
    unit_id: int = 0

    @classmethod
    def whole_script(cls, run_id: int) -> Directive:
        """Run the script as it is: the run has no main loop to work by."""
        return cls(run_id, [], [], None, 0, 0, None)

    @classmethod
    def from_start(cls, run_id: int, main_loop_id: int, stop: int, *,
                   owns_prefix: bool = True) -> Directive:
        """Execute iterations ``0..stop-1`` from the start, nothing restored."""
        return cls(run_id, [], [], main_loop_id, 0, stop, None, owns_prefix=owns_prefix)

    @classmethod
    def prefix(cls, run_id: int, main_loop_id: int) -> Directive:
        """Only what the run logs before its main loop; exit where the loop starts."""
        return cls(run_id, [], [], main_loop_id, 0, 0, None, owns_prefix=True,
                   owns_suffix=False, run_suffix=False)

    @classmethod
    def suffix_from(cls, run_id: int, main_loop_id: int, checkpoint: int, stop: int
                    ) -> Directive:
        """Fast-forward to ``checkpoint`` (the loop's last), run the rest and what follows."""
        return cls(run_id, [], [], main_loop_id, checkpoint, stop, checkpoint,
                   owns_prefix=False)

    @classmethod
    def window(cls, run_id: int, main_loop_id: int, start: int, stop: int,
               restore_from: int | None, *, skip_inner: bool, owns_prefix: bool,
               owns_suffix: bool, run_suffix: bool) -> Directive:
        """Iterations ``start..stop-1``, from checkpoint ``restore_from`` (None: the start)."""
        return cls(run_id, [], [], main_loop_id, start, stop, restore_from,
                   skip_inner=skip_inner, owns_prefix=owns_prefix, owns_suffix=owns_suffix,
                   run_suffix=run_suffix)

    def cross_check(self, start: int, stop: int, restore_from: int | None, *,
                    stop_at_inner: bool = False) -> Directive:
        """A check of this unit's kind of work: iterations ``start..stop-1`` executed in
        full from ``restore_from``, their values compared, never shown."""
        return replace(self, start=start, stop=stop, restore_from=restore_from,
                       skip_inner=False, owns_prefix=False, owns_suffix=False,
                       run_suffix=False, verify=True, stop_at_inner=stop_at_inner, unit_id=0)

    def executed_from_start(self) -> Directive:
        """The same window executed from the start, nothing skipped or restored."""
        return replace(self, restore_from=None, skip_inner=False, verify=False,
                       stop_at_inner=False, unit_id=0)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Directive:
        """The directive stored as ``text``; fields this flordb does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


def begin_replay(conn: sqlite3.Connection, names: list[str], where: str | None) -> int:
    """Insert a ``replays`` row for this process; returns its id."""
    with write_transaction(conn):
        cur = conn.execute(
            "INSERT INTO replays (started, names, where_expr, pid, host) VALUES (?, ?, ?, ?, ?)",
            (time.time(), json.dumps(names), where, os.getpid(), socket.gethostname()))
    return inserted_id(cur)


def add_units(conn: sqlite3.Connection, replay_id: int, directives: list[Directive]) -> None:
    """Insert one ``planned`` unit per directive, setting each directive's ``unit_id``."""
    with write_transaction(conn):
        for d in directives:
            cur = conn.execute(
                "INSERT INTO replay_units (replay_id, run_id, names, start, stop, directive,"
                " status) VALUES (?, ?, ?, ?, ?, '', 'planned')",
                (replay_id, d.run_id, json.dumps(d.new_names), d.start, d.stop))
            d.unit_id = inserted_id(cur)
            conn.execute("UPDATE replay_units SET directive = ? WHERE unit_id = ?",
                         (d.to_json(), d.unit_id))


def directive(conn: sqlite3.Connection, unit_id: int) -> Directive:
    """The directive of unit ``unit_id``."""
    row = conn.execute("SELECT directive FROM replay_units WHERE unit_id = ?",
                       (unit_id,)).fetchone()
    if row is None:
        raise ReplayUnitError(f"no replay unit {unit_id} in this store")
    return Directive.from_json(row[0])


def unit_checks(conn: sqlite3.Connection, unit_id: int) -> UnitChecks:
    """What unit ``unit_id``'s child reported of its checks against the recording."""
    row = conn.execute("SELECT checks FROM replay_units WHERE unit_id = ?",
                       (unit_id,)).fetchone()
    return UnitChecks.from_json(row[0] if row else None)


def unit_status(conn: sqlite3.Connection, unit_id: int) -> str:
    """``planned``, ``running``, ``done`` or ``failed``."""
    return conn.execute("SELECT status FROM replay_units WHERE unit_id = ?",
                        (unit_id,)).fetchone()[0]


def store_checks(conn: sqlite3.Connection, replay_id: int, run_id: int,
                 checks: list[tuple[str, int, int, float | None, str]]) -> None:
    """Record ``(name, compared, differing, max_abs_diff, example)`` fidelity checks of a
    run's replay (replacing earlier ones of the same name)."""
    with write_transaction(conn):
        conn.executemany(
            "INSERT OR REPLACE INTO replay_checks (replay_id, run_id, name, compared, differing,"
            " max_abs_diff, example) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(replay_id, run_id, *c) for c in checks])


def mark_running(conn: sqlite3.Connection, unit_id: int) -> None:
    with write_transaction(conn):
        conn.execute("UPDATE replay_units SET status = 'running' WHERE unit_id = ?", (unit_id,))


def complete(conn: sqlite3.Connection, d: Directive, seconds: float) -> None:
    """Make unit ``d``'s pending values visible and mark it done, in one transaction (a
    cross-check's values become ``'verify'``, which no reader shows)."""
    marks = ",".join("?" * len(d.new_names))
    new, old = ("verify", "verify") if d.verify else ("replay", "recheck")
    with write_transaction(conn):
        for table in ("series", "records"):
            conn.execute(
                f"UPDATE {table} SET source = CASE WHEN name IN ({marks}) THEN '{new}'"
                f" ELSE '{old}' END WHERE unit = ? AND source = 'pending'",
                (*d.new_names, d.unit_id))
        conn.execute("UPDATE replay_units SET status = 'done', seconds = ? WHERE unit_id = ?",
                     (seconds, d.unit_id))


def fail(conn: sqlite3.Connection, unit_id: int, error: str, seconds: float | None) -> None:
    """Drop unit ``unit_id``'s pending values and mark it failed with ``error``."""
    with write_transaction(conn):
        _delete_pending(conn, "unit = ?", (unit_id,))
        conn.execute("UPDATE replay_units SET status = 'failed', error = ?, seconds = ?"
                     " WHERE unit_id = ?", (error, seconds, unit_id))


def clear_stale(conn: sqlite3.Connection) -> int:
    """Fail the unfinished units of replays whose driver process is gone; returns how many."""
    host = socket.gethostname()
    stale = [
        (unit,) for unit, pid, unit_host in conn.execute(
            "SELECT u.unit_id, r.pid, r.host FROM replay_units AS u JOIN replays AS r"
            " ON r.replay_id = u.replay_id WHERE u.status IN ('planned', 'running')")
        if unit_host == host and not pid_alive(pid, None)]
    if stale:
        with write_transaction(conn):
            for (unit,) in stale:
                _delete_pending(conn, "unit = ?", (unit,))
            conn.executemany("UPDATE replay_units SET status = 'failed', error = 'the replay"
                             " that ran it ended first' WHERE unit_id = ?", stale)
    return len(stale)


def _delete_pending(conn: sqlite3.Connection, where: str, params: tuple) -> None:
    conn.execute("DELETE FROM series_rows WHERE chunk_id IN (SELECT chunk_id FROM series"
                 f" WHERE source = 'pending' AND {where})", params)
    conn.execute(f"DELETE FROM series WHERE source = 'pending' AND {where}", params)
    conn.execute(f"DELETE FROM records WHERE source = 'pending' AND {where}", params)


def done_ranges(conn: sqlite3.Connection, run_id: int, name: str) -> list[tuple[int, int, bool,
                                                                                bool]]:
    """``(start, stop, owns_prefix, owns_suffix)`` of the done units that back-filled ``name``."""
    out = []
    for text, in conn.execute("SELECT directive FROM replay_units WHERE run_id = ?"
                              " AND status = 'done'", (run_id,)):
        d = Directive.from_json(text)
        if name in d.new_names and not d.verify:
            out.append((d.start, d.stop, d.owns_prefix, d.owns_suffix))
    return out
