"""Runs as executions: one row each with their provenance, for ``flor.executions``."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from flordb import values as _values
from flordb.store.writer import dead_runs

if TYPE_CHECKING:
    import pandas as pd


def recorded_args(conn: sqlite3.Connection, run_id: int | None = None
                  ) -> dict[int, dict[str, Any]]:
    """run_id -> its ``flor.arg`` values as recorded (of one run, with ``run_id``)."""
    where, params = ("", ()) if run_id is None else (" AND run_id = ?", (run_id,))
    out: dict[int, dict[str, Any]] = {}
    for run, name, value, vtype, text in conn.execute(
            "SELECT run_id, name, value, vtype, repr FROM records WHERE kind = 'arg' AND"
            f" source = 'record'{where} ORDER BY run_id, seq", params):
        out.setdefault(run, {})[name] = _values.decode(value, vtype, text)
    return out


def executions(conn: sqlite3.Connection) -> pd.DataFrame:
    """The ``executions`` view with ``args``, environment summary and input/output counts."""
    import pandas as pd

    frame = pd.read_sql_query(
        "SELECT e.run_id, e.projid, e.tstamp, e.filename, e.status, e.started, e.ended,"
        " e.duration_s, e.argv, e.snapshot, e.git_dirty, e.env_hash, env.env, e.host"
        " FROM executions e LEFT JOIN environments env ON env.env_hash = e.env_hash"
        " ORDER BY e.run_id", conn)
    args = recorded_args(conn)
    frame.loc[frame["run_id"].isin(dead_runs(conn)), "status"] = "killed"
    counts: dict[tuple[int, str], int] = {}
    for run, what, n in conn.execute(
            "SELECT run_id, direction, COUNT(*) FROM run_io GROUP BY run_id, direction"
            " UNION ALL SELECT run_id, 'checkpoint', COUNT(DISTINCT loop_id || ':' || iter)"
            " FROM checkpoints GROUP BY run_id"):
        counts[(run, what)] = n
    # No environment record (a run killed first, or still recording it): an empty one.
    env = [json.loads(e) if isinstance(e, str) else {} for e in frame.pop("env")]
    frame["argv"] = [json.loads(a) for a in frame["argv"]]
    frame["args"] = [args.get(r, {}) for r in frame["run_id"]]
    frame["python"] = [e.get("python") for e in env]
    frame["platform"] = [e.get("platform") for e in env]
    frame["cuda"] = [e.get("accelerators", {}).get("cuda") for e in env]
    for what in ("input", "output", "checkpoint"):
        frame[f"{what}s"] = [counts.get((r, what), 0) for r in frame["run_id"]]
    return frame
