"""``flor.query``: read-only SQL over the store.

Hot series live in blobs; the ``logs`` view shows them as rows through ``series_rows``, which
is filled here, lazily, for chunks no query has unpacked yet. The unpacking is the only write a
query makes, it runs in its own transaction, and it is paid once per chunk.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd

from flordb.store.db import connect_reader, connect_writer, writable, write_transaction


def query(root: Path, sql: str, params: tuple[Any, ...] = ()) -> pd.DataFrame:
    """Run ``sql`` on a ``query_only`` connection and return the rows as a DataFrame."""
    conn = connect_reader(root)
    conn.set_authorizer(_no_attach)
    try:
        if "logs" in sql.lower() or "series_rows" in sql.lower():
            if not writable(root):
                _refuse_if_packed(conn)
            else:
                unpack_series(root)
        return pd.read_sql_query(sql, conn, params=params)
    finally:
        conn.close()


def _no_attach(action: int, *args: Any) -> int:
    """``ATTACH`` would create a database file: a read-only query may not."""
    return sqlite3.SQLITE_DENY if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH) \
        else sqlite3.SQLITE_OK


def _refuse_if_packed(conn: Any) -> None:
    """A read-only store cannot expand its numeric series for SQL: say so, never show a
    ``logs`` view with values silently missing."""
    packed = conn.execute("SELECT COUNT(*) FROM series WHERE unpacked = 0").fetchone()[0]
    if packed:
        from flordb.errors import FlorError

        raise FlorError(f"this store is read-only and {packed} numeric series chunks are not "
                        "expanded for SQL: the logs view would miss their values. Read them "
                        "with flor.dataframe / flordb dataframe, or open a writable copy")


def unpack_series(root: Path) -> int:
    """Fill ``series_rows`` for every chunk not yet unpacked; returns the rows added."""
    import numpy as np

    conn = connect_writer(root)
    added = 0
    try:
        with write_transaction(conn):
            chunks = conn.execute(
                "SELECT chunk_id, dtype, iters, vals FROM series WHERE unpacked = 0").fetchall()
            for chunk_id, dtype, iters, vals in chunks:
                it = np.frombuffer(iters, dtype="<i8").tolist()
                vs = np.frombuffer(vals, dtype="<f8" if dtype == "f8" else "<i8").tolist()
                conn.executemany("INSERT INTO series_rows (chunk_id, iter, value) VALUES (?, ?, ?)",
                                 zip([chunk_id] * len(it), it, vs))
                added += len(it)
            conn.executemany("UPDATE series SET unpacked = 1 WHERE chunk_id = ?",
                             [(c[0],) for c in chunks])
    finally:
        conn.close()
    return added
