"""The store handle: runs as one entity with a global identity, transactions, read-only
handles that refuse writes."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys

import pytest

from flordb.errors import StoreError
from flordb.store.handle import Run, Store
from flordb.store.schema import MIGRATIONS
from tests.conftest import run_script, write_script

SCRIPT = """
import flordb as flor
lr = flor.arg("lr", 0.1)
for e in flor.loop("epoch", range(2)):
    flor.log("loss", 1.0 / (e + 1))
"""


def test_runs_are_entities_with_a_global_identity(repo):
    write_script(repo, SCRIPT)
    run_script(repo, None)
    run_script(repo, None, "--kwargs", "lr=0.5")
    with Store.open(repo) as store:
        runs = store.runs()
        assert [type(r) for r in runs] == [Run, Run]
        first, second = runs
        assert first.status == second.status == "completed"
        assert first.filename == "train.py" and second.argv[-1] == "lr=0.5"
        assert len({first.uid, second.uid}) == 2 and all(len(r.uid) == 32 for r in runs)
        assert store.run(second.run_id) == second
        assert store.run_by_uid(first.uid) == first and store.run_by_uid("0" * 32) is None
        assert store.args([first.run_id, second.run_id]) == {first.run_id: {"lr": 0.1},
                                                            second.run_id: {"lr": 0.5}}
        assert store.runs([second.run_id]) == [second]
        assert [(lp.loop_id, lp.parent_id, lp.name, lp.depth, lp.iterations)
                for lp in store.loops(first.run_id)] == [(1, 0, "epoch", 1, 2)]
        assert store.replays() == []
        with pytest.raises(StoreError, match="no run 99"):
            store.run(99)
        with pytest.raises(dataclasses.FrozenInstanceError):
            first.status = "failed"  # type: ignore[misc]
    with Store.open(repo) as again:  # identities are stored, not derived per read
        assert [r.uid for r in again.runs()] == [first.uid, second.uid]


def test_a_read_only_handle_refuses_writes_and_a_writer_commits_or_rolls_back(repo):
    write_script(repo, SCRIPT)
    run_script(repo, None)
    with Store.open(repo) as store:
        with pytest.raises(StoreError, match="read-only"):
            with store.transaction():
                pass
        with pytest.raises(sqlite3.Error):
            store.conn.execute("UPDATE runs SET status = 'failed'")
    with Store.open(repo, write=True) as store:
        with pytest.raises(KeyError):
            with store.transaction() as tx:
                tx.conn.execute("UPDATE runs SET filename = 'other.py'")
                raise KeyError("rolled back")
        assert store.runs()[0].filename == "train.py"
        with store.transaction() as tx:
            tx.conn.execute("UPDATE runs SET filename = 'other.py'")
        assert store.runs()[0].filename == "other.py"


def test_a_store_from_before_global_identities_gets_them(repo):
    """A store at the schema version before the identities (as an older flordb left it) is
    migrated when opened: each existing run, dataset, version and feature gets its own."""
    write_script(repo, SCRIPT)
    run_script(repo, None)
    run_script(repo, None)
    path = repo / ".flor" / "flor.db"
    conn = sqlite3.connect(path)
    for table in ("runs", "datasets", "dataset_versions", "features"):
        conn.execute(f"DROP INDEX {table}_uid")
        conn.execute(f"ALTER TABLE {table} DROP COLUMN uid")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    conn.commit()
    conn.close()
    with Store.open(repo) as store:
        uids = [r.uid for r in store.runs()]
    assert len(set(uids)) == 2 and all(len(u) == 32 for u in uids)


def test_lifecycle_records_get_global_identities(repo):
    write_script(repo, """
import flordb as flor
ds = flor.dataset("images")
ds.add(["a.png", "b.png"])
ds.release("1.0.0")
flor.feature("label", columns={"label": "str"})
""")
    done = subprocess.run([sys.executable, "train.py"], cwd=repo, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(repo / ".flor" / "flor.db")
    for table in ("runs", "datasets", "dataset_versions", "features"):
        uids = [u for u, in conn.execute(f"SELECT uid FROM {table}")]
        assert uids and all(u and len(u) == 32 for u in uids), table
