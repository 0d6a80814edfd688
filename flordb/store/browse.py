"""The reads behind ``flordb ui``: each page's rows, as plain dicts and frames.

Every function takes a read-only connection (:func:`flordb.store.db.connect_reader`) and runs
the page's SQL; nothing here writes. Runs whose process died without ending them are shown
``killed`` (:func:`flordb.store.writer.dead_runs`).
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from flordb.store.executions import recorded_args

if TYPE_CHECKING:
    import pandas

    from flordb.store.handle import Run

def run_details(conn: sqlite3.Connection, run: Run, output_lines: int) -> dict[str, Any]:
    """What a run's page shows beside the run itself: its environment, logged names (with
    counts per source), inputs and outputs, args and the last ``output_lines`` lines of its
    output."""
    run_id = run.run_id
    env = conn.execute("SELECT env FROM environments WHERE env_hash = ?",
                       (run.env_hash,)).fetchone()
    return {
        "environment": json.loads(env[0]) if env else {},
        "names": [dict(name=n, source=s, count=c) for n, s, c in conn.execute(
            "SELECT name, source, SUM(n) FROM (SELECT name, source, n FROM series"
            " WHERE run_id = ? UNION ALL SELECT name, source, 1 FROM records WHERE"
            " run_id = ? AND kind = 'log') WHERE source IN ('record', 'replay')"
            " GROUP BY name, source ORDER BY name", (run_id, run_id))],
        "io": [dict(direction=d, kind=k, ref=r, checksum=c) for d, k, r, c in conn.execute(
            "SELECT direction, kind, ref, checksum FROM run_io WHERE run_id = ?"
            " ORDER BY direction, kind, ref", (run_id,))],
        "args": recorded_args(conn, run_id).get(run_id, {}),
        "output": [dict(stream=st, level=lv or "", logger=lg or "", text=tx)
                   for st, lv, lg, tx in reversed(conn.execute(
                       "SELECT stream, level, logger, text FROM run_output WHERE run_id = ?"
                       " ORDER BY seq DESC LIMIT ?", (run_id, output_lines)).fetchall())],
    }


def snapshots_up_to(conn: sqlite3.Connection, run_id: int) -> list[tuple[int, str, str | None]]:
    """``(run_id, filename, snapshot)`` of every run up to ``run_id``, oldest first."""
    return conn.execute("SELECT run_id, filename, snapshot FROM runs WHERE run_id <= ?"
                        " ORDER BY run_id", (run_id,)).fetchall()


def datasets(conn: sqlite3.Connection) -> tuple[pandas.DataFrame, pandas.DataFrame]:
    """Datasets with their working-set sizes, and every released version."""
    import pandas as pd

    listing = pd.read_sql_query(
        "SELECT d.name, d.record_type, d.description, (SELECT COUNT(*) FROM"
        " dataset_members m WHERE m.dataset_id = d.dataset_id) AS members"
        " FROM datasets d ORDER BY d.name", conn)
    versions = pd.read_sql_query(
        "SELECT d.name AS dataset, v.label, v.n_members, v.content_hash,"
        " v.released_by AS run_id, v.description FROM dataset_versions v JOIN datasets d"
        " ON d.dataset_id = v.dataset_id ORDER BY d.name, v.version_id", conn)
    return listing, versions


def features(conn: sqlite3.Connection, latest: int) -> tuple[pandas.DataFrame,
                                                              pandas.DataFrame]:
    """Features with value, record and annotator counts, and the ``latest`` values."""
    import pandas as pd

    listing = pd.read_sql_query(
        "SELECT f.name, f.record_type, f.columns, f.vocabulary, COUNT(v.record_id)"
        " AS \"values\", COUNT(DISTINCT v.record_id) AS records,"
        " COUNT(DISTINCT v.annotator) AS annotators FROM features f LEFT JOIN"
        " feature_values v ON v.feature_id = f.feature_id GROUP BY f.feature_id"
        " ORDER BY f.name", conn)
    recent = pd.read_sql_query(
        "SELECT f.name AS feature, v.record_id, v.value, v.annotator, v.workflow,"
        " v.run_id FROM feature_values v JOIN features f ON f.feature_id = v.feature_id"
        " ORDER BY v.created DESC LIMIT ?", conn, params=(latest,))
    return listing, recent


def metric_names(conn: sqlite3.Connection) -> tuple[list[str], dict[str, list[str]],
                                                     list[tuple[int, str]]]:
    """Numeric names logged by runs or replays, the loops around each (outermost first), and
    every run's ``(run_id, tstamp)``."""
    names = [n for n, in conn.execute(
        "SELECT DISTINCT name FROM series WHERE source IN ('record', 'replay') ORDER BY name")]
    parent: dict[tuple[int, int], tuple[int, str, int]] = {
        (r, loop): (p, n, d) for r, loop, p, n, d in conn.execute(
            "SELECT run_id, loop_id, parent_id, name, depth FROM loops")}
    found: dict[str, dict[str, int]] = {}  # name -> loop -> depth
    for name, run_id, loop_id in conn.execute(
            "SELECT DISTINCT name, run_id, loop_id FROM series WHERE loop_id > 0"):
        key: tuple[int, int] | None = (run_id, loop_id)
        while key in parent:  # the loop holding the values and the loops around it
            up, loop, depth = parent[key]
            found.setdefault(name, {})[loop] = depth
            key = (run_id, up) if up else None
    loops = {n: sorted(ls, key=ls.__getitem__) for n, ls in found.items()}
    runs = conn.execute("SELECT run_id, tstamp FROM runs ORDER BY run_id").fetchall()
    return names, loops, runs


def replayed(conn: sqlite3.Connection, name: str) -> set[str]:
    """The tstamps of the runs whose values of ``name`` were back-filled by a replay."""
    return {t for t, in conn.execute(
        "SELECT tstamp FROM runs WHERE run_id IN (SELECT run_id FROM series WHERE name = ?"
        " AND source = 'replay' UNION SELECT run_id FROM records WHERE name = ? AND"
        " source = 'replay')", (name, name))}


def last_values(conn: sqlite3.Connection, run_ids: list[int]) -> dict[tuple[int, str], Any]:
    """``(run_id, name) -> `` the last numeric value each run recorded or back-filled under
    each name."""
    import numpy as np

    marks = ",".join("?" * len(run_ids))
    out: dict[tuple[int, str], Any] = {}
    for run_id, name, dtype, vals in conn.execute(
            f"SELECT run_id, name, dtype, vals FROM series WHERE run_id IN ({marks}) AND"
            f" source IN ('record', 'replay') ORDER BY seq", run_ids):
        arr = np.frombuffer(vals, dtype="<f8" if dtype == "f8" else "<i8")
        if len(arr):
            out[(run_id, name)] = arr[-1].item()
    return out
