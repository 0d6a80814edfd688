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
from conftest import git, make_repo, run_script

from flordb.store.db import store_dir
from flordb.ui import create_app

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
    from flordb.store.db import connect_reader
    from flordb.store.frames import dataframe

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
        for args in (["dataframe", "acc", "lr"], ["runs"], ["query", "SELECT COUNT(*) FROM runs"],
                     ["query", "SELECT iter, value FROM logs WHERE name = 'acc' ORDER BY iter"],
                     ["query", "SELECT value_name, ctx FROM logs WHERE name = 'acc'"]):
            cli = subprocess.run([sys.executable, "-m", "flordb", *args], cwd=repo,
                                 capture_output=True, text=True)
            assert cli.returncode == 0, cli.stderr
            assert "0.5" in cli.stdout or args[0] != "dataframe"
            if "iter, value" in args[-1]:  # packed series expanded in memory for SQL
                assert cli.stdout.split()[-4:] == ["0", "0.5", "1", "1.5"], cli.stdout
    finally:
        subprocess.run(["umount", str(store)], check=True)
    assert {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()
            and p.name in before} == before


FILLS_THE_DISK = '''
import numpy as np
import flordb as flor
flor.log("before", 1.0)
flor.commit()
big = np.random.default_rng(0).random(100_000)  # 800 kB a checkpoint
with flor.checkpointing(big=big):
    for epoch in flor.loop("epoch", range(30)):
        big += 1
        for i in range(20_000):
            flor.log("x", float(i))
print("training finished")
'''


@pytest.mark.skipif(not _can_mount(), reason="needs root to mount a small tmpfs")
def test_a_full_disk_is_one_line_and_loses_nothing_written(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"tmpfs mounts are not permitted here: {done.stderr.decode().strip()}")
    try:
        repo = make_repo(disk / "proj")
        proc = run_script(repo, FILLS_THE_DISK, check=False)
        assert proc.returncode == 0 and "training finished" in proc.stdout  # training goes on
        assert proc.stderr.strip().count("\n") == 0, proc.stderr  # one line
        assert "the disk is full" in proc.stderr
        from flordb.store.frames import dataframe

        assert dataframe(repo, ["before"])["before"].tolist() == [1.0]  # the earlier run
        conn = sqlite3.connect(store_dir(repo) / "flor.db")
        try:
            statuses = [s for (s,) in conn.execute("SELECT status FROM runs ORDER BY run_id")]
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            conn.close()
        assert statuses[0] == "completed" and statuses[1] in ("failed", "running")
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=True)


def test_a_damaged_store_is_one_line_for_writes_and_reads(repo):
    run_script(repo, "import flordb as flor\nflor.log('a', 1.0)\n")
    db = store_dir(repo) / "flor.db"
    with open(db, "r+b") as f:
        f.write(b"not a database " * 10)
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    proc = run_script(repo, "import flordb as flor\nflor.log('a', 2.0)\nprint('went on')\n",
                      check=False)
    assert proc.returncode == 0 and "went on" in proc.stdout
    assert proc.stderr.count("\n") == 1 and "the store is damaged" in proc.stderr
    cli = subprocess.run([sys.executable, "-m", "flordb", "dataframe", "a"], cwd=repo,
                         capture_output=True, text=True)
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1, cli.stderr


def test_small_faults_are_one_clear_line(hostile, tmp_path):
    repo, _ = hostile
    attach = subprocess.run([sys.executable, "-m", "flordb", "query",
                             f"ATTACH DATABASE '{tmp_path / 'made.db'}' AS a"], cwd=repo,
                            capture_output=True, text=True)
    assert attach.returncode == 2 and "not authorized" in attach.stderr
    assert not (tmp_path / "made.db").exists()
    client = create_app(repo).test_client()
    for url in (f"/runs/{2**70}", f"/runs/{2**70}/diff"):
        assert client.get(url).status_code == 404
    for bad in ("-1", "99999", "x"):
        proc = subprocess.run([sys.executable, "-m", "flordb", "ui", "--port", bad], cwd=repo,
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and "invalid port value" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_a_killed_run_is_shown_killed_before_anyone_records(repo):
    proc = subprocess.Popen([sys.executable, "-c", (
        "import time, flordb as flor\n"
        "for i in flor.loop('i', range(10**6)):\n"
        "    flor.log('x', float(i)); time.sleep(0.01)\n")], cwd=repo,
        env={**os.environ, "FLORDB_ECHO": "0", "FLORDB_FLUSH_S": "0.05"})
    import time

    db = store_dir(repo) / "flor.db"
    for _ in range(200):
        time.sleep(0.05)
        if db.exists():
            break
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    runs = subprocess.run([sys.executable, "-m", "flordb", "runs"], cwd=repo,
                          capture_output=True, text=True)
    assert runs.returncode == 0 and "killed" in runs.stdout, runs.stdout + runs.stderr
    page = create_app(repo).test_client().get("/").get_data(as_text=True)
    assert "killed" in page
    from flordb.store.db import connect_reader
    from flordb.store.executions import executions

    conn = connect_reader(repo)
    try:
        assert executions(conn)["status"].tolist() == ["killed"]
        assert conn.execute("SELECT status FROM runs").fetchall() == [("running",)]  # unwritten
    finally:
        conn.close()
