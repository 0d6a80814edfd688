"""``flor.query``: read-only SQL over the store.

Hot series live in blobs; the ``logs`` view shows them as rows through ``series_rows``, which
is filled here, lazily, for chunks no query has unpacked yet. The unpacking is the only write a
query makes, it runs in its own transaction, and it is paid once per chunk.

Notebooks written for FlorDB query its layout, so a query's connection also has it, as
temporary views that shadow flordb's names for that connection only: ``logs`` gains FlorDB's
columns (``projid, tstamp, filename, ctx_id, ctx, value_name, value_type``), and a query that
names one of FlorDB's loop columns (``ctx_id, p_ctx_id, l_name, iteration, l_value``) sees
``loops`` as FlorDB has it, one row per loop iteration (flordb's own columns kept). A context
id is the text ``"<run_id>:<loop_id>:<iter>"``; top-level values have none.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from flordb.errors import QueryError
from flordb.store.db import connect_reader, connect_writer, writable, write_transaction

_FLORDB_LOOP_COLUMNS = re.compile(r"\b(ctx_id|p_ctx_id|l_name|iteration|l_value)\b", re.I)

_UPSTREAM_LOGS = """
CREATE TEMP VIEW logs AS
    SELECT l.*, r.projid, r.tstamp, r.filename,
           CASE WHEN l.loop_id = 0 THEN NULL
                ELSE l.run_id || ':' || l.loop_id || ':' || l.iter END AS ctx_id,
           flor_ctx(l.run_id, l.loop_id, l.iter) AS ctx,
           l.name AS value_name, l.vtype AS value_type
    FROM {logs} AS l JOIN main.runs AS r ON r.run_id = l.run_id
"""

#: ``logs`` of a store that cannot be written: chunks no query has unpacked are expanded
#: into a temporary table of the query's own connection (memory), never into the store.
_EXPANDED_LOGS = """
CREATE TEMP TABLE expanded_rows (chunk_id INTEGER NOT NULL, iter INTEGER NOT NULL, value);
CREATE TEMP VIEW expanded_logs AS
    SELECT r.run_id, r.loop_id, r.iter, r.seq, r.name, r.value, r.vtype, r.kind, r.source
    FROM main.records AS r
    UNION ALL
    SELECT s.run_id, s.loop_id, sr.iter, s.seq, s.name, sr.value,
           CASE s.dtype WHEN 'f8' THEN 'float' ELSE 'int' END, 'log', s.source
    FROM main.series AS s JOIN (SELECT chunk_id, iter, value FROM main.series_rows
                                UNION ALL SELECT chunk_id, iter, value FROM expanded_rows)
         AS sr ON sr.chunk_id = s.chunk_id
"""

_UPSTREAM_LOOPS = """
CREATE TEMP VIEW loops AS
    WITH RECURSIVE span(run_id, loop_id, n) AS (
        SELECT run_id, loop_id, COALESCE(iterations, flor_seen(run_id, loop_id)) FROM main.loops
    ), it(run_id, loop_id, iter, n) AS (
        SELECT run_id, loop_id, 0, n FROM span WHERE n > 0
        UNION ALL
        SELECT run_id, loop_id, iter + 1, n FROM it WHERE iter + 1 < n
    )
    SELECT lp.*, it.iter,
           it.run_id || ':' || it.loop_id || ':' || it.iter AS ctx_id,
           CASE WHEN lp.parent_id = 0 THEN NULL
                ELSE lp.run_id || ':' || lp.parent_id || ':' || lp.parent_iter END AS p_ctx_id,
           lp.name AS l_name, it.iter AS iteration,
           flor_element(it.run_id, it.loop_id, it.iter) AS l_value
    FROM it JOIN main.loops AS lp ON lp.run_id = it.run_id AND lp.loop_id = it.loop_id
"""


def query(root: Path, sql: str, params: tuple[Any, ...] = ()) -> pd.DataFrame:
    """Run ``sql`` (one statement that returns rows: a ``SELECT``, or a ``PRAGMA`` that only
    reads) on a ``query_only`` connection and return the rows as a DataFrame, with ``tstamp``
    columns as datetimes. Anything else raises :class:`~flordb.errors.QueryError`."""
    if not sql.strip():
        raise QueryError("no SQL statement given: e.g. SELECT name, COUNT(*) FROM logs "
                         "GROUP BY name")
    conn = connect_reader(root)
    try:
        expand = False
        if "logs" in sql.lower() or "series_rows" in sql.lower():
            if writable(root):
                unpack_series(root)
            else:
                expand = True
        _flordb_layout(conn, loops=bool(_FLORDB_LOOP_COLUMNS.search(sql)), expand=expand)
        conn.set_authorizer(_read_only)
        try:
            cursor = conn.execute(sql, params)
            if cursor.description is None:
                raise QueryError("the statement returns no rows: flordb runs SELECT "
                                 "statements and PRAGMAs that only read")
            columns = [c[0] for c in cursor.description]
            frame = pd.DataFrame.from_records(cursor.fetchall(), columns=columns,
                                              coerce_float=True)
        except (sqlite3.Error, sqlite3.Warning) as exc:
            raise QueryError(f"{exc}" + (" (flordb query is read-only)"
                                         if "not authorized" in str(exc) else "")) from None
    finally:
        conn.close()
    if "tstamp" in frame.columns:
        frame["tstamp"] = pd.to_datetime(frame["tstamp"], errors="coerce", format="ISO8601")
    return frame


def _flordb_layout(conn: sqlite3.Connection, loops: bool, expand: bool) -> None:
    """FlorDB's ``logs`` (and, when asked for, ``loops``) as temporary views of this
    connection: nothing is written to the store. With ``expand``, series chunks not unpacked
    in the store are expanded into the connection's memory for the views."""
    elements = _Elements(conn, "expanded_logs" if expand else "main.logs")
    conn.create_function("flor_ctx", 3, elements.context, deterministic=True)
    conn.create_function("flor_element", 3, elements.element, deterministic=True)
    conn.create_function("flor_seen", 2, elements.seen, deterministic=True)
    conn.execute("PRAGMA query_only = OFF")  # temporary views only: the store stays untouched
    try:
        if expand:
            for statement in _EXPANDED_LOGS.split(";"):
                conn.execute(statement)
            conn.executemany("INSERT INTO expanded_rows VALUES (?, ?, ?)",
                             _packed_rows(conn))
        conn.execute(_UPSTREAM_LOGS.format(logs=elements.logs))
        if loops:
            conn.execute(_UPSTREAM_LOOPS)
    finally:
        conn.execute("PRAGMA query_only = ON")


def _packed_rows(conn: sqlite3.Connection) -> Iterator[tuple[int, int, float | int]]:
    """``(chunk_id, iter, value)`` of every series chunk the store has not unpacked."""
    import numpy as np

    for chunk_id, dtype, iters, vals in conn.execute(
            "SELECT chunk_id, dtype, iters, vals FROM main.series WHERE unpacked = 0"):
        values = np.frombuffer(vals, dtype="<f8" if dtype == "f8" else "<i8").tolist()
        for it, value in zip(np.frombuffer(iters, dtype="<i8").tolist(), values):
            yield chunk_id, it, value


#: PRAGMAs a query may run: they only read the schema.
_READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "table_list", "index_list",
                           "index_info", "index_xinfo", "foreign_key_list", "user_version",
                           "schema_version", "database_list", "function_list",
                           "collation_list", "compile_options", "page_count", "page_size"})


def _read_only(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
    """The user's statement may read, never attach a file or change a setting: ``ATTACH``
    would create a database file and ``PRAGMA journal_mode = ...`` would change the store."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA:
        readable = (arg1 or "").lower() in _READ_PRAGMAS and (
            arg2 is None or (arg1 or "").lower().endswith(("_info", "_xinfo", "_list")))
        return sqlite3.SQLITE_OK if readable else sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


class _Elements:
    """Loop element values and context chains, read once per run on first use."""

    def __init__(self, conn: sqlite3.Connection, logs: str) -> None:
        self.conn, self.logs = conn, logs
        self.runs: dict[int, dict[int, tuple]] = {}

    def _loops(self, run_id: int) -> dict[int, tuple]:
        if run_id not in self.runs:
            listed: dict[int, list] = {}
            for loop_id, vals in self.conn.execute(
                    "SELECT loop_id, vals FROM main.loop_values WHERE run_id = ?"
                    " ORDER BY loop_id, first_iter", (run_id,)):
                listed.setdefault(loop_id, []).extend(json.loads(vals))
            self.runs[run_id] = {
                loop_id: (parent, parent_iter, name, r0, rstep, listed.get(loop_id, []))
                for loop_id, parent, parent_iter, name, r0, rstep in self.conn.execute(
                    "SELECT loop_id, parent_id, parent_iter, name, range_start, range_step"
                    " FROM main.loops WHERE run_id = ?", (run_id,))}
        return self.runs[run_id]

    def element(self, run_id: int, loop_id: int, it: int) -> Any:
        """The element of loop ``loop_id`` at 0-based iteration ``it`` (None if unknown)."""
        loop = self._loops(run_id).get(loop_id)
        if loop is None:
            return None
        _, _, _, r0, rstep, listed = loop
        if r0 is not None:
            return r0 + rstep * it
        value = listed[it] if 0 <= it < len(listed) else None
        return value if value is None or isinstance(value, (int, float, str)) \
            else json.dumps(value)

    def context(self, run_id: int, loop_id: int, it: int) -> str | None:
        """FlorDB's context: a JSON list of ``{name, iteration, value}``, outermost first."""
        chain = []
        loops = self._loops(run_id)
        while loop_id and loop_id in loops:
            parent, parent_iter, name = loops[loop_id][:3]
            chain.append({"name": name, "iteration": it,
                          "value": self.element(run_id, loop_id, it)})
            loop_id, it = parent, parent_iter
        return json.dumps(chain[::-1]) if chain else None

    def seen(self, run_id: int, loop_id: int) -> int:
        """Iterations of a loop that never ended (its run was killed): those it logged in,
        or whose elements were flushed."""
        row = self.conn.execute(f"SELECT MAX(iter) + 1 FROM {self.logs} WHERE run_id = ? AND"
                                " loop_id = ?", (run_id, loop_id)).fetchone()
        return max(row[0] or 0, len(self._loops(run_id).get(loop_id, (0,) * 6)[5]))


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
