"""Recording where a run came from: its code snapshot and its environment."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from flordb.store import environment, redact, snapshot
from flordb.store.db import connect_writer, write_transaction


def snapshot_ref(projid: str, tstamp: str, run_id: int) -> str:
    """The name under ``refs/flor/runs/`` of a run's snapshot (git-ref safe)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{projid}/{tstamp}")
    return f"{safe}-{run_id}"


def record(root: Path, in_git: bool, projid: str, tstamp: str, filename: str,
           run_id: int) -> None:
    """Snapshot the code (when in git) and store the environment and the environment variables
    (credentials removed) on the run's row."""
    snap = None
    if in_git:
        snap = snapshot.take(root, snapshot_ref(projid, tstamp, run_id),
                             f"flordb snapshot: {filename} run {run_id} at {tstamp}")
    conn = connect_writer(root)
    try:
        key = environment.fingerprint()
        known = conn.execute("SELECT env_hash FROM environments WHERE fingerprint = ?",
                             (key,)).fetchone()
        env_hash, env_json = (known[0], None) if known else environment.capture()
        with write_transaction(conn):
            if not known:
                conn.execute("INSERT OR IGNORE INTO environments (env_hash, env, fingerprint)"
                             " VALUES (?, ?, ?)", (env_hash, env_json, key))
            conn.execute(
                "UPDATE runs SET env_hash = ?, snapshot = ?, git_head = ?, git_dirty = ?,"
                " env_vars = ? WHERE run_id = ?",
                (env_hash, snap and snap.commit, snap and snap.head,
                 None if snap is None else int(snap.dirty),
                 json.dumps(redact.environment(os.environ)), run_id))
    finally:
        conn.close()
