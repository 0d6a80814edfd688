"""Code snapshots never change the user's repository, and hold exactly the code that ran."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from tests.conftest import git, run_script

SCRIPT = """
import flordb as flor
for e in flor.loop("epoch", range(2)):
    flor.log("x", e)
"""


def repo_state(repo: Path) -> dict:
    """Everything of the user's repository a snapshot must leave byte-for-byte unchanged."""
    files = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if rel.startswith((".git/", ".flor")) or rel == ".git" or not path.is_file():
            continue
        files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "files": files,
        "index": (repo / ".git" / "index").read_bytes(),
        "HEAD": (repo / ".git" / "HEAD").read_text(),
        "head": git(repo, "rev-parse", "HEAD"),
        "status": git(repo, "--no-optional-locks", "status", "--porcelain=v2", "--branch",
                      "--untracked-files=all"),
        "stash": git(repo, "stash", "list"),
        "refs": [r for r in git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
                 .splitlines() if not r.startswith("refs/flor/")],
    }


def test_user_repository_is_unchanged(repo):
    (repo / "tracked.py").write_text("a = 1\n")
    (repo / "staged.py").write_text("s = 1\n")
    git(repo, "add", "tracked.py", "staged.py")
    git(repo, "commit", "-q", "-m", "two files")
    (repo / "stashme.py").write_text("st = 1\n")
    git(repo, "add", "stashme.py")
    git(repo, "stash", "-q")
    (repo / "staged.py").write_text("s = 2\n")
    git(repo, "add", "staged.py")
    (repo / "tracked.py").write_text("a = 2  # unstaged\n")
    (repo / "untracked.txt").write_text("notes\n")
    (repo / ".gitignore").write_text("ignored.bin\n")
    (repo / "ignored.bin").write_bytes(b"\0" * 10)
    (repo / "train.py").write_text(SCRIPT)
    before = repo_state(repo)
    run_script(repo)
    run_script(repo)
    after = repo_state(repo)
    assert after == before
    assert ".flor" not in git(repo, "status", "--porcelain", "--untracked-files=all")


def snapshot_of_last_run(repo: Path) -> tuple[str, str, int]:
    conn = sqlite3.connect(repo / ".flor" / "flor.db")
    row = conn.execute("SELECT snapshot, git_head, git_dirty FROM runs"
                       " ORDER BY run_id DESC LIMIT 1").fetchone()
    conn.close()
    return row


def test_snapshot_holds_the_working_tree(repo):
    (repo / "data.csv").write_text("1,2\n")
    (repo / ".gitignore").write_text("secret.txt\n")
    (repo / "secret.txt").write_text("pw\n")
    run_script(repo, SCRIPT)
    commit, head, dirty = snapshot_of_last_run(repo)
    assert head == git(repo, "rev-parse", "HEAD").strip()
    assert dirty == 1
    assert git(repo, "show", f"{commit}:train.py") == (repo / "train.py").read_text()
    assert git(repo, "show", f"{commit}:data.csv") == "1,2\n"
    listed = git(repo, "ls-tree", "-r", "--name-only", commit).split()
    assert "secret.txt" not in listed
    assert not any(p.startswith(".flor") for p in listed)
    assert commit in git(repo, "for-each-ref", "refs/flor/")
    assert git(repo, "rev-parse", f"{commit}^") == git(repo, "rev-parse", "HEAD")


def test_clean_tree_is_not_dirty(repo):
    (repo / "train.py").write_text(SCRIPT)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "script")
    run_script(repo)
    commit, head, dirty = snapshot_of_last_run(repo)
    assert dirty == 0
    assert git(repo, "rev-parse", f"{commit}^{{tree}}") == git(repo, "rev-parse", "HEAD^{tree}")


def test_large_files_are_skipped_with_a_warning(repo):
    (repo / "big.bin").write_bytes(os.urandom(300_000))
    proc = run_script(repo, SCRIPT, env={"FLORDB_MAX_FILE_MB": "0.1"})
    assert "not snapshotting big.bin" in proc.stderr
    commit, _, _ = snapshot_of_last_run(repo)
    assert "big.bin" not in git(repo, "ls-tree", "-r", "--name-only", commit).split()
    assert "train.py" in git(repo, "ls-tree", "-r", "--name-only", commit).split()


def test_outside_git_logging_works_with_one_notice(tmp_path):
    proj = tmp_path / "nogit"
    proj.mkdir()
    proc = run_script(proj, SCRIPT + "flor.commit()\nflor.log('y', 1)\n")
    assert proc.stderr.count("not inside a git repository") == 1
    conn = sqlite3.connect(proj / ".flor" / "flor.db")
    rows = conn.execute("SELECT snapshot, status FROM runs").fetchall()
    assert rows == [(None, "completed"), (None, "completed")]


def test_edit_in_the_same_second_as_the_index_is_still_snapshotted(repo):
    """git trusts an index entry whose file stat matches (to the second, here) unless the file
    is as new as the index ("racily clean"): the snapshot's copy of the index keeps its mtime.
    Each round edits a file right after committing it, to the same size."""
    from flordb.store import snapshot

    for i in range(5):
        path = repo / f"train{i}.py"
        path.write_text("lr = 0.1\n")
        git(repo, "add", path.name)
        git(repo, "commit", "-q", "-m", path.name)
        path.write_text("lr = 0.2\n")
        snap = snapshot.take(repo, f"racy{i}", "racy edit")
        assert git(repo, "show", f"{snap.commit}:{path.name}") == "lr = 0.2\n", i


def test_flordb_refs_do_not_run_the_users_hooks(repo):
    hook = repo / ".git" / "hooks" / "reference-transaction"
    calls = repo.parent / "hook-calls"
    hook.write_text(f"#!/bin/sh\necho \"$1\" >> {calls}\n")
    hook.chmod(0o755)
    run_script(repo, "import flordb as flor\nflor.log('a', 1.0)\n")
    assert git(repo, "for-each-ref", "refs/flor/").strip()  # the snapshot ref exists
    assert not calls.exists()


def test_temporary_files_left_by_killed_writers_are_swept(repo):
    import os
    import time

    from flordb.store.db import store_dir

    run_script(repo, "import flordb as flor\nflor.log('a', 1.0)\n")
    objects = store_dir(repo) / "objects" / "ab"
    objects.mkdir(parents=True)
    old, young = objects / ".tmp-old", objects / ".tmp-young"
    old.write_bytes(b"x" * 1000)
    young.write_bytes(b"x")
    past = time.time() - 2 * 3600
    os.utime(old, (past, past))
    run_script(repo, "import numpy as np, flordb as flor\nw = np.zeros(3)\n"
                     "with flor.checkpointing(w=w):\n"
                     "    for i in flor.loop('i', range(2)):\n        w += 1\n")
    assert not old.exists() and young.exists()  # a young one may be a live writer's
