"""A store from someone else: reading it runs no code and writes no file; bad values and
faults lose nothing and say one clear line."""

from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from flordb.store.db import store_dir
from flordb.ui import create_app

from conftest import git, make_repo, run_script

SCRIPT = '''
import flordb as flor
lr = flor.arg("lr", 0.1)
opts = flor.arg("opts", None)
for epoch in flor.loop("epoch", range(2)):
    flor.log("acc", 0.5 + epoch)
    flor.log("obj", {1, 2})
    flor.log("note", "n")
'''


class Planted:
    """Unpickling this creates the marker file: proof that a read ran stored code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def hostile(tmp_path) -> tuple[Path, Path]:
    repo = make_repo(tmp_path / "proj")
    run_script(repo, SCRIPT)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    run_script(repo, None)
    marker = tmp_path / "pwned"
    bomb = pickle.dumps(Planted(marker))
    with sqlite3.connect(store_dir(repo) / "flor.db") as conn:
        conn.execute("UPDATE records SET value = ?, vtype = 'pickle', repr = 'x'", (bomb,))
        conn.execute("UPDATE runs SET snapshot = ? WHERE run_id = 2",
                     (f"--output={tmp_path / 'written'}",))
    return repo, marker


def test_no_read_path_unpickles(hostile, monkeypatch):
    repo, marker = hostile
    monkeypatch.chdir(repo)
    code = ("import flordb as flor\n"
            "flor.dataframe('acc', 'obj', 'note', 'lr', 'opts'); flor.dataframe()\n"
            "flor.executions(); flor.query('SELECT * FROM logs')\n"
            "v = flor.dataframe('obj')['obj'].iloc[0]\n"
            "print(type(v).__name__, v.repr)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True,
                         text=True, env={**os.environ, "FLORDB_ECHO": "0"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["PickledValue", "x"]
    for args in (["dataframe", "obj", "lr"], ["runs"], ["dataframe"]):
        cli = subprocess.run([sys.executable, "-m", "flordb", *args], cwd=repo,
                             capture_output=True, text=True)
        assert cli.returncode == 0, cli.stderr
    assert not marker.exists()


def test_loading_a_pickle_needs_trust(hostile, monkeypatch):
    from flordb.errors import FlorError
    from flordb.store.frames import dataframe

    repo, marker = hostile
    value = dataframe(repo, ["obj"])["obj"].iloc[0]
    with pytest.raises(FlorError, match="trust_store=True"):
        value.load()
    assert not marker.exists()
    value.load(trust_store=True)  # the user's explicit choice
    assert marker.exists()


def test_no_ui_page_runs_stored_code_or_passes_options_to_git(hostile, tmp_path):
    repo, marker = hostile
    client = create_app(repo).test_client()
    for url in ("/", "/runs/1", "/runs/2", "/runs/2/diff", "/metrics",
                "/metrics?name=acc&x=epoch", "/dataframe?names=acc,obj,note,lr",
                "/replays", "/datasets", "/features", "/chart.png?name=acc"):
        response = client.get(url)
        assert response.status_code < 500, url
    diff = client.get("/runs/2/diff")
    assert b"commit id" in diff.data
    assert not (tmp_path / "written").exists()
    assert not marker.exists()


def test_a_lone_surrogate_loses_no_value(repo):
    run_script(repo, '''
import flordb as flor
for i in flor.loop("i", range(3)):
    flor.log("x", float(i))
    flor.log("note", "bad \\ud800 " + str(i))
''')
    from flordb.store.frames import dataframe
    from flordb.store.db import connect_reader

    frame = dataframe(repo, ["x", "note"])
    assert frame["x"].tolist() == [0.0, 1.0, 2.0]
    assert frame["note"].tolist() == [f"bad \ud800 {i}" for i in range(3)]
    with connect_reader(repo) as conn:
        assert conn.execute("SELECT status FROM runs").fetchall() == [("completed",)]


def test_a_bad_name_is_one_clear_error_at_log_time(repo):
    proc = run_script(repo, '''
import flordb as flor
flor.log("good", 1.0)
try:
    flor.log("bad\\udfff", 1.0)
except ValueError as e:
    print("refused:", type(e).__name__)
''')
    assert "refused: BadNameError" in proc.stdout
    from flordb.store.frames import dataframe

    assert dataframe(repo, ["good"])["good"].tolist() == [1.0]


def test_executions_of_a_run_without_environment(repo):
    run_script(repo, SCRIPT)
    with sqlite3.connect(store_dir(repo) / "flor.db") as conn:
        conn.execute("UPDATE runs SET env_hash = NULL")
    from flordb.store.db import connect_reader
    from flordb.store.executions import executions

    conn = connect_reader(repo)
    try:
        frame = executions(conn)
    finally:
        conn.close()
    assert frame["python"].tolist() == [None]


def test_a_bad_environment_variable_is_one_line(repo):
    proc = run_script(repo, "import flordb as flor\nflor.log('a', 1.0)\n",
                      env={"FLORDB_FLUSH_S": "abc"})
    assert proc.stderr.count("\n") == 1
    assert "FLORDB_FLUSH_S='abc'" in proc.stderr


def _can_mount() -> bool:
    return shutil.which("mount") is not None and hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.mark.skipif(not _can_mount(), reason="needs root to bind-mount a read-only store")
def test_a_read_only_store_can_be_read(repo, tmp_path):
    run_script(repo, SCRIPT)
    store = store_dir(repo)
    before = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()}
    done = subprocess.run(["mount", "--bind", str(store), str(store)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"bind mounts are not permitted here: {done.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(store)], check=True)
        for args in (["dataframe", "acc", "lr"], ["runs"], ["query", "SELECT COUNT(*) FROM runs"]):
            cli = subprocess.run([sys.executable, "-m", "flordb", *args], cwd=repo,
                                 capture_output=True, text=True)
            assert cli.returncode == 0, cli.stderr
            assert "0.5" in cli.stdout or args[0] != "dataframe"
    finally:
        subprocess.run(["umount", str(store)], check=True)
    assert {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()
            and p.name in before} == before
