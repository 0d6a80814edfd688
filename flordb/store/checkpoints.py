"""The ``checkpoints`` table: which objects make up the checkpoint of a loop iteration."""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from flordb.store.db import write_transaction


class Entry(NamedTuple):
    """One object of a checkpoint (or its RNG states)."""

    run_id: int
    loop_id: int
    iteration: int
    name: str
    kind: str
    digest: str  # the object's sha256 in the store's objects/
    nbytes: int
    capture_s: float


def insert(conn: sqlite3.Connection, entries: list[Entry], write_s: float) -> None:
    """Record the entries of one checkpoint (replacing an earlier one of that iteration)."""
    with write_transaction(conn):
        conn.executemany(
            "INSERT OR REPLACE INTO checkpoints (run_id, loop_id, iter, name, kind, object,"
            " bytes, capture_s, write_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*e, write_s) for e in entries])


def iterations(conn: sqlite3.Connection, run_id: int, loop_id: int) -> list[tuple[int, str]]:
    """``(iteration, object digest)`` of every checkpointed object of a loop instance."""
    return conn.execute("SELECT iter, object FROM checkpoints WHERE run_id = ? AND loop_id = ?"
                        " ORDER BY iter", (run_id, loop_id)).fetchall()


def objects_at(conn: sqlite3.Connection, run_id: int, loop_id: int, iteration: int
               ) -> list[tuple[str, str, str]]:
    """``(name, kind, digest)`` of the objects checkpointed at ``iteration``."""
    return conn.execute(
        "SELECT name, kind, object FROM checkpoints WHERE run_id = ? AND loop_id = ?"
        " AND iter = ?", (run_id, loop_id, iteration)).fetchall()
