"""The store under crashes, concurrency and readers."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flordb.store.db import connect_writer
from flordb.store.schema import SCHEMA_VERSION, SchemaTooNewError
from tests.conftest import run_script, write_script

SLOW = """
import time, flordb as flor
for e in flor.loop("epoch", range(100000)):
    flor.log("x", float(e))
    print(e, flush=True)
    time.sleep(0.02)
"""


def db(repo: Path) -> sqlite3.Connection:
    return sqlite3.connect(repo / ".flor" / "flor.db")


def start_slow(repo: Path) -> subprocess.Popen:
    write_script(repo, SLOW, "slow.py")
    return subprocess.Popen([sys.executable, "slow.py"], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "FLORDB_ECHO": "0", "FLORDB_FLUSH_S": "0.05"})


def wait_for_epoch(proc: subprocess.Popen, epoch: int) -> int:
    for line in proc.stdout:
        if int(line) >= epoch:
            return int(line)
    raise AssertionError(proc.stderr.read())


def xs(repo: Path) -> list[float]:
    conn = db(repo)
    import numpy as np

    out = []
    for (vals,) in conn.execute("SELECT vals FROM series WHERE name = 'x' ORDER BY seq"):
        out.extend(np.frombuffer(vals, "<f8").tolist())
    return out


def test_sigkill_keeps_flushed_rows_and_next_run_marks_it_killed(repo):
    proc = start_slow(repo)
    wait_for_epoch(proc, 10)
    time.sleep(0.3)  # several flush intervals
    proc.kill()
    proc.wait()
    kept = xs(repo)
    assert len(kept) >= 10
    assert kept == [float(i) for i in range(len(kept))]  # a prefix, nothing torn
    assert db(repo).execute("SELECT status FROM runs").fetchall() == [("running",)]
    run_script(repo, "import flordb as flor\nflor.log('y', 1)\n")
    assert db(repo).execute("SELECT status FROM runs ORDER BY run_id").fetchall() == [
        ("killed",), ("completed",)]


def test_sigterm_flushes_and_marks_killed(repo):
    proc = start_slow(repo)
    last = wait_for_epoch(proc, 5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGTERM
    assert len(xs(repo)) >= last + 1
    assert db(repo).execute("SELECT status FROM runs").fetchall() == [("killed",)]


WRITER = """
import sys, flordb as flor
for e in flor.loop("epoch", range(200)):
    for s in flor.loop("step", range(100)):
        flor.log("v", float(s))
    flor.log("tag", "e%d" % e)
"""


def test_concurrent_writers_lose_nothing(repo):
    write_script(repo, WRITER, "w.py")
    env = {**os.environ, "FLORDB_ECHO": "0", "FLORDB_FLUSH_S": "0.001"}
    procs = [subprocess.Popen([sys.executable, "w.py"], cwd=repo, env=env,
                              stderr=subprocess.PIPE, text=True) for _ in range(5)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    conn = db(repo)
    assert conn.execute("SELECT SUM(n) FROM series WHERE name = 'v'").fetchone()[0] == 5 * 20000
    assert conn.execute("SELECT COUNT(*) FROM records WHERE name = 'tag'").fetchone()[0] == 1000
    assert conn.execute("SELECT COUNT(DISTINCT tstamp), COUNT(*) FROM runs").fetchone() == (5, 5)
    run_script(repo, "import flordb as flor\nassert len(flor.dataframe('v')) == 100000\n"
                     "assert len(flor.dataframe('tag')) == 1000\n", name="check.py")


def test_runs_started_in_the_same_second_are_distinct(repo):
    code = "import flordb as flor\nfor i in range(3):\n    flor.log('i', i)\n    flor.commit()\n"
    write_script(repo, code, "fast.py")
    env = {**os.environ, "FLORDB_ECHO": "0"}
    procs = [subprocess.Popen([sys.executable, "fast.py"], cwd=repo, env=env) for _ in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    rows = db(repo).execute("SELECT tstamp FROM runs").fetchall()
    assert len(rows) == 9 and len(set(rows)) == 9


def test_readers_record_no_run(repo):
    run_script(repo, "import flordb as flor\nflor.log('a', 1.0)\n")
    run_script(repo, "import flordb as flor\nflor.dataframe('a')\nflor.dataframe()\n"
                     "flor.query('SELECT * FROM logs')\n", name="read.py")
    subprocess.run([sys.executable, "-m", "flordb", "runs"], cwd=repo, check=True,
                   capture_output=True)
    assert db(repo).execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1


def test_flordb_never_touches_user_rng(repo):
    code = """
import random, sys
import numpy as np
use = sys.argv[1] == "1"
if use:
    import flordb as flor
random.seed(7); np.random.seed(7)
out = []
for i in (flor.loop("i", range(5)) if use else range(5)):
    out.append((random.random(), float(np.random.rand())))
    if use:
        flor.log("r", out[-1][0])
print(out)
"""
    with_flor = run_script(repo, code, "1", name="rng.py").stdout
    without = run_script(repo, None, "0", name="rng.py").stdout
    assert with_flor == without


def test_schema_is_versioned(tmp_path, monkeypatch):
    monkeypatch.delenv("FLORDB_DIR", raising=False)
    conn = connect_writer(tmp_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNewError, match="upgrade flordb"):
        connect_writer(tmp_path)


def test_memory_is_flat_in_values_logged(repo):
    code = """
import resource, sys, flordb as flor
n = int(sys.argv[1])
for i in flor.loop("i", range(n)):
    flor.log("x", 0.5)
flor.commit()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    small = int(run_script(repo, code, "100000", name="mem.py").stdout)
    large = int(run_script(repo, None, "3000000", name="mem.py").stdout)
    assert (large - small) / 1024 < 40, (small, large)  # KB -> MB; values hold 48 MB raw
