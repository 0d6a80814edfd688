"""A run's inputs and outputs (``run_io``): dataset versions, files by checksum, features."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Literal

from flordb.store.db import write_transaction


def file_digest(path: Path) -> tuple[str, int] | None:
    """``(sha256, size)`` of the file at ``path``, or None when there is no such file."""
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest(), path.stat().st_size


#: Which way a file, dataset, feature selection or checkpoint went.
Direction = Literal["input", "output"]
#: What was read or written.
IoKind = Literal["dataset", "file", "feature", "checkpoint"]


def record(conn: sqlite3.Connection, run_id: int, direction: Direction, kind: IoKind, ref: str,
           checksum: str | None, nbytes: int | None = None, as_of: float | None = None
           ) -> None:
    """Record one input or output of ``run_id`` (the latest of the same ref wins); ``as_of``:
    the cut-off (epoch seconds) of a read of values stored over time (a feature)."""
    with write_transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO run_io (run_id, direction, kind, ref, checksum, bytes, at,"
            " as_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, direction, kind, ref, checksum, nbytes, time.time(), as_of))
