"""What the recording says about past runs, as the replay planner and executor read it: runs,
their main loops and timing, the names they logged, their values by context."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from flordb import values as _values

ValueKey = tuple[str, int, int]  # (name, loop_id, iter)


def script_names(conn: sqlite3.Connection) -> list[str]:
    """Every script that recorded a run."""
    return [r[0] for r in conn.execute("SELECT DISTINCT filename FROM runs ORDER BY filename")]


def calls(conn: sqlite3.Connection, run_ids: list[int]
          ) -> dict[int, tuple[list[str], str, str | None]]:
    """``run_id -> (argv, cwd, recorded environment JSON)``: how each run was started."""
    out = {}
    for start in range(0, len(run_ids), 500):
        batch = run_ids[start:start + 500]
        for run_id, argv, cwd, env in conn.execute(
                f"SELECT run_id, argv, cwd, env_vars FROM runs WHERE run_id IN"
                f" ({','.join('?' * len(batch))})", batch):
            out[run_id] = (json.loads(argv), cwd, env)
    return out


def env_vars(conn: sqlite3.Connection, run_id: int) -> str | None:
    """The run's recorded environment (JSON), if any."""
    return conn.execute("SELECT env_vars FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]


def span(conn: sqlite3.Connection, run_id: int) -> tuple[float, float | None]:
    """``(started, ended)`` of the run."""
    return conn.execute("SELECT started, ended FROM runs WHERE run_id = ?",
                        (run_id,)).fetchone()


def recorded(conn: sqlite3.Connection, run_id: int, name: str) -> bool:
    """Whether the run itself logged ``name``."""
    return conn.execute(
        "SELECT 1 FROM records WHERE run_id = ? AND name = ? AND source = 'record'"
        " UNION ALL SELECT 1 FROM series WHERE run_id = ? AND name = ? AND"
        " source = 'record' LIMIT 1", (run_id, name, run_id, name)).fetchone() is not None


def recorded_names(conn: sqlite3.Connection, run_id: int) -> set[str]:
    """The names the run itself logged (not its args)."""
    return {r[0] for r in conn.execute(
        "SELECT DISTINCT name FROM series WHERE run_id = ? AND source = 'record' UNION"
        " SELECT DISTINCT name FROM records WHERE run_id = ? AND source = 'record'"
        " AND kind = 'log'", (run_id, run_id))}


def main_loop(conn: sqlite3.Connection, run_id: int) -> tuple[int, str, int | None] | None:
    """``(loop_id, name, iterations)`` of the run's first outermost loop instance."""
    return conn.execute("SELECT loop_id, name, iterations FROM loops WHERE run_id = ? AND"
                        " depth = 1 ORDER BY loop_id LIMIT 1", (run_id,)).fetchone()


def outer_loop_count(conn: sqlite3.Connection, run_id: int) -> int:
    """How many outermost loop instances the run entered."""
    return conn.execute("SELECT COUNT(*) FROM loops WHERE run_id = ? AND depth = 1",
                        (run_id,)).fetchone()[0]


def loop_depths(conn: sqlite3.Connection, run_id: int) -> dict[str, int]:
    """The shallowest depth of each loop name of the run."""
    return dict(conn.execute("SELECT name, MIN(depth) FROM loops WHERE run_id = ?"
                             " GROUP BY name", (run_id,)).fetchall())


def loop_parents(conn: sqlite3.Connection, run_id: int) -> dict[int, tuple[int, int]]:
    """``loop_id -> (parent_id, parent_iter)`` of every loop instance of the run."""
    return {loop_id: (parent, it) for loop_id, parent, it in conn.execute(
        "SELECT loop_id, parent_id, parent_iter FROM loops WHERE run_id = ?", (run_id,))}


def loop_timing(conn: sqlite3.Connection, run_id: int) -> list[tuple[str, int, int, float]]:
    """``(name, depth, iterations, seconds)`` per loop name of the run."""
    return conn.execute("SELECT name, depth, iterations, seconds FROM loop_timing"
                        " WHERE run_id = ?", (run_id,)).fetchall()


def mean_checkpoint_bytes(conn: sqlite3.Connection, run_id: int) -> float | None:
    """The mean size of the run's checkpoints (all objects of one iteration together)."""
    return conn.execute("SELECT AVG(b) FROM (SELECT SUM(bytes) AS b FROM checkpoints"
                        " WHERE run_id = ? GROUP BY loop_id, iter)", (run_id,)).fetchone()[0]


def unit_values(conn: sqlite3.Connection, source: str, unit_ids: list[int]
                ) -> dict[ValueKey, Any]:
    """``(name, loop_id, iter) -> value`` written by replay units with ``source``
    (``pending``, ``recheck``)."""
    marks = ",".join("?" * len(unit_ids))
    return _values_where(conn, f"source = ? AND unit IN ({marks})", [source, *unit_ids])


def recorded_values(conn: sqlite3.Connection, run_id: int, names: list[str]
                    ) -> dict[ValueKey, Any]:
    """``(name, loop_id, iter) -> value`` the run itself logged under ``names``."""
    marks = ",".join("?" * len(names))
    return _values_where(conn, f"run_id = ? AND source = 'record' AND name IN ({marks})",
                         [run_id, *names])


def _values_where(conn: sqlite3.Connection, where: str, params: list) -> dict[ValueKey, Any]:
    import numpy as np

    out: dict[ValueKey, Any] = {}
    for name, loop_id, dtype, iters, vals in conn.execute(
            f"SELECT name, loop_id, dtype, iters, vals FROM series WHERE {where} ORDER BY seq",
            params):
        its = np.frombuffer(iters, "<i8").tolist()
        vs = np.frombuffer(vals, "<f8" if dtype == "f8" else "<i8").tolist()
        out.update(((name, loop_id, i), v) for i, v in zip(its, vs))
    for name, loop_id, it, value, vtype, text in conn.execute(
            f"SELECT name, loop_id, iter, value, vtype, repr FROM records WHERE {where}"
            f" AND kind = 'log' ORDER BY seq", params):
        out[(name, loop_id, it)] = _values.decode(value, vtype, text)
    return out
