"""The store as one handle: it owns its connection and transactions, and its reads return
entities keyed by run id.

``Store.open(root)`` reads (the connection cannot write); ``Store.open(root, write=True)``
also writes, each change inside ``with store.transaction():``. A run has one shape, the frozen
:class:`Run`, wherever it is read through the handle; its ``uid`` is its global identity (the
same on every machine), its ``run_id`` this store's local one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from flordb.errors import StoreError
from flordb.store.db import (
    DB_FILENAME,
    connect_reader,
    connect_writer,
    store_dir,
    write_transaction,
)
from flordb.store.executions import recorded_args
from flordb.store.writer import Status, dead_runs

if TYPE_CHECKING:
    import pandas

RunStatus = Literal[Status, "killed"]


@dataclass(frozen=True)
class Run:
    """One run of a script, as the store records it."""

    run_id: int
    uid: str
    projid: str
    tstamp: str
    filename: str
    status: RunStatus
    argv: tuple[str, ...]
    cwd: str
    started: float
    ended: float | None
    host: str
    git_head: str | None
    git_dirty: bool | None
    snapshot: str | None
    env_hash: str | None
    parent_run: int | None
    n_values: int

    @property
    def seconds(self) -> float:
        """How long it ran (so far, for a run still going)."""
        return (self.ended or self.started) - self.started


@dataclass(frozen=True)
class LoopInstance:
    """One entry into a ``flor.loop`` of a run (``loop_id`` sequential per run)."""

    run_id: int
    loop_id: int
    parent_id: int  # 0: the run's top level
    parent_iter: int
    name: str
    depth: int
    iterations: int | None


@dataclass(frozen=True)
class ReplayUnit:
    """One work unit of a replay: a run's iterations ``start..stop-1``."""

    unit_id: int
    run_id: int
    start: int
    stop: int
    status: str
    seconds: float | None
    error: str | None


@dataclass(frozen=True)
class ReplayCheck:
    """A recorded name re-executed by a replay, compared with the recording, in one run."""

    run_id: int
    name: str
    compared: int
    differing: int
    max_abs_diff: float | None
    example: str | None


@dataclass(frozen=True)
class Replay:
    """One ``flordb replay``: what it back-filled, its units and its checks."""

    replay_id: int
    names: tuple[str, ...]
    where_expr: str | None
    units: tuple[ReplayUnit, ...]
    checks: tuple[ReplayCheck, ...]


_RUN_COLUMNS = ("run_id", "uid", "projid", "tstamp", "filename", "status", "argv", "cwd",
                "started", "ended", "host", "git_head", "git_dirty", "snapshot", "env_hash",
                "parent_run", "n_values")


class Store:
    """An open store: one SQLite connection, reads as entities, writes in transactions."""

    def __init__(self, root: Path, write: bool) -> None:
        self.root = root
        self.writable = write
        self.conn = connect_writer(root) if write else connect_reader(root)

    @classmethod
    def open(cls, root: Path, write: bool = False) -> Store:
        """The store of the project at ``root``; read-only unless ``write``."""
        return cls(Path(root), write)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """One write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on error)."""
        if not self.writable:
            raise StoreError("this store handle was opened read-only: "
                             "Store.open(root, write=True) to change it")
        with write_transaction(self.conn):
            yield self

    # ------------------------------------------------------------------ runs
    def runs(self, run_ids: Iterable[int] | None = None) -> list[Run]:
        """The runs (all, or those of ``run_ids``), oldest first."""
        # An id SQLite cannot hold names no run (and must not overflow the query).
        ids = () if run_ids is None else tuple(i for i in map(int, run_ids)
                                                if -2**63 <= i < 2**63)
        where = "" if run_ids is None else f" WHERE run_id IN ({','.join('?' * len(ids))})"
        rows = self.conn.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs{where}"
                                 " ORDER BY run_id", ids).fetchall()
        dead = dead_runs(self.conn)
        return [_run(row, dead) for row in rows]

    def run(self, run_id: int) -> Run:
        """The run with local id ``run_id``."""
        found = self.runs([run_id])
        if not found:
            raise StoreError(f"no run {run_id} in this store")
        return found[0]

    def run_by_uid(self, uid: str) -> Run | None:
        """The run whose global identity is ``uid``, if this store has it."""
        row = self.conn.execute("SELECT run_id FROM runs WHERE uid = ?", (uid,)).fetchone()
        return None if row is None else self.run(row[0])

    def loops(self, run_id: int) -> list[LoopInstance]:
        """The loop instances of a run, in the order they were entered."""
        return [LoopInstance(*row) for row in self.conn.execute(
            "SELECT run_id, loop_id, parent_id, parent_iter, name, depth, iterations FROM loops"
            " WHERE run_id = ? ORDER BY loop_id", (run_id,))]

    def replays(self) -> list[Replay]:
        """Every replay, newest first, with its units and its checks against the recording."""
        out = []
        for replay_id, names, where in self.conn.execute(
                "SELECT replay_id, names, where_expr FROM replays ORDER BY replay_id DESC"
                ).fetchall():
            units = tuple(ReplayUnit(*row) for row in self.conn.execute(
                "SELECT unit_id, run_id, start, stop, status, seconds, error FROM replay_units"
                " WHERE replay_id = ? ORDER BY unit_id", (replay_id,)))
            checks = tuple(ReplayCheck(*row) for row in self.conn.execute(
                "SELECT run_id, name, compared, differing, max_abs_diff, example"
                " FROM replay_checks WHERE replay_id = ? ORDER BY run_id, name", (replay_id,)))
            out.append(Replay(replay_id, tuple(json.loads(names)), where, units, checks))
        return out

    def names(self) -> set[str]:
        """Every name any run logged or took as an arg."""
        return {n for n, in self.conn.execute(
            "SELECT DISTINCT name FROM records UNION SELECT DISTINCT name FROM series")}

    def size(self) -> int:
        """Bytes the database takes on disk (with its write-ahead log)."""
        path = store_dir(self.root) / DB_FILENAME
        return sum(p.stat().st_size for p in path.parent.glob(DB_FILENAME + "*"))

    # ------------------------------------------------------------------ the read service
    def frame(self, names: Sequence[str], runs: Sequence[int] | None = None,
              run_ids: bool = True) -> pandas.DataFrame:
        """Every value of ``names`` (of the runs ``runs``, default all) in FlorDB's layout
        (:func:`flordb.dataframe`), with each row's ``run_id`` first unless ``run_ids`` is
        false."""
        from flordb.store import frames  # pandas: imported when a frame is asked for

        return frames.dataframe(self, names, run_ids=run_ids, runs_only=runs)

    def runs_table(self, where: str | None = None,
                   metrics: Sequence[tuple[str, str]] = ()) -> pandas.DataFrame:
        """One row per run: identity, top-level values, a ``<name> <summary>`` column per
        metric, filtered by ``where`` (:mod:`flordb.store.where`)."""
        from flordb.store import frames

        return frames.runs_where(self, where, metrics)

    def arguments(self) -> pandas.DataFrame:
        """One row per run: ``tstamp`` and its ``flor.arg`` values."""
        from flordb.store import frames

        return frames.arguments(self)

    def args(self, run_ids: Iterable[int] | None = None) -> dict[int, dict[str, Any]]:
        """``run_id -> {name: value}`` of the runs' recorded ``flor.arg`` values."""
        found = recorded_args(self.conn)
        if run_ids is None:
            return found
        return {int(r): found.get(int(r), {}) for r in run_ids}


def _run(row: tuple, dead: set[int]) -> Run:
    values = dict(zip(_RUN_COLUMNS, row))
    values["argv"] = tuple(json.loads(values["argv"]))
    if values["git_dirty"] is not None:
        values["git_dirty"] = bool(values["git_dirty"])
    if values["run_id"] in dead:
        values["status"] = "killed"
    return Run(**values)
