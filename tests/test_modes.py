"""The recording mode on its own: a real store in a temporary project, no script."""

from __future__ import annotations

import sqlite3

from flordb.loops import Frame
from flordb.modes import RecordMode, kwarg
from flordb.project import Project
from flordb.store.db import DB_FILENAME, store_dir
from flordb.store.writer import Batch, Record


def test_loop_ids_are_sequential_per_run_and_restart_with_each_run(tmp_path):
    project = Project(root=tmp_path, projid="p", in_git=False)
    mode = RecordMode(tmp_path, {}, set())
    top = Frame(0, "", None, 0)
    first, tstamp = mode.begin(project)
    assert [mode.loop_id(top, "epoch") for _ in range(3)] == [1, 2, 3]
    assert mode.end("completed") == 0
    second, _ = mode.begin(project)
    assert second == first + 1 and mode.loop_id(top, "epoch") == 1
    mode.flush(Batch(records=[Record(0, 0, 1, "x", 1.5, "float", None, "log")]))
    assert mode.end("failed") == 1
    mode.close()
    conn = sqlite3.connect(store_dir(tmp_path) / DB_FILENAME)
    assert conn.execute("SELECT run_id, status, n_values FROM runs ORDER BY run_id"
                        ).fetchall() == [(first, "completed", 0), (second, "failed", 1)]
    assert tstamp is not None


def test_kwargs_are_cast_to_the_default_and_marked_read():
    given, read = {"lr": "0.5", "flag": "no", "name": "x"}, set()
    assert kwarg(given, read, "lr", 0.1) == 0.5
    assert kwarg(given, read, "flag", True) is False
    assert kwarg(given, read, "epochs", 3) == 3
    assert read == {"lr", "flag"}
