"""The SQL of the registry views: runs by identity, a run's main loop, features by type."""

from __future__ import annotations

import sqlite3


def main_loop(conn: sqlite3.Connection, run_id: int, name: str | None
              ) -> tuple[int, int | None] | None:
    """``(loop_id, iterations)`` of the run's first outermost loop (named ``name`` when
    given)."""
    if name is not None:
        return conn.execute("SELECT loop_id, iterations FROM loops WHERE run_id = ? AND"
                            " depth = 1 AND name = ? ORDER BY loop_id LIMIT 1",
                            (run_id, name)).fetchone()
    return conn.execute("SELECT loop_id, iterations FROM loops WHERE run_id = ? AND depth = 1"
                        " ORDER BY loop_id LIMIT 1", (run_id,)).fetchone()


def features_on(conn: sqlite3.Connection, record_type: str) -> list[str]:
    """The names of the features defined on ``record_type``, oldest first."""
    return [r[0] for r in conn.execute(
        "SELECT name FROM features WHERE record_type = ? ORDER BY feature_id", (record_type,))]
