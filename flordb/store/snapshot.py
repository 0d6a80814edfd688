"""Code snapshots: the exact files a run saw, as a git commit under ``refs/flor/``.

The snapshot is built in a temporary index file (``GIT_INDEX_FILE``), so the user's branch,
HEAD, index, working tree, untracked files and stash are never touched. ``git add -A`` in that
index respects ``.gitignore``; files above a size limit are left out with a warning.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from flordb import settings

SNAPSHOT_REF_PREFIX = "refs/flor/runs/"
#: Untracked or modified files larger than this are not snapshotted (``$FLORDB_MAX_FILE_MB``).
DEFAULT_MAX_FILE_MB = float(settings.default("max_file_mb") or 0)
_IDENTITY = {
    "GIT_AUTHOR_NAME": "flordb", "GIT_AUTHOR_EMAIL": "flordb@localhost",
    "GIT_COMMITTER_NAME": "flordb", "GIT_COMMITTER_EMAIL": "flordb@localhost",
}


_COMMIT_ID = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


def commit_id(value: object) -> str:
    """``value`` if it is a full commit id (40 or 64 hex digits), else a clear error: ids read
    from the store reach git's command line, where anything else could be taken as an
    option."""
    if isinstance(value, str) and _COMMIT_ID.fullmatch(value):
        return value
    from flordb.errors import StoreValueError

    raise StoreValueError(f"the store holds {str(value)[:60]!r} where a commit id belongs: "
                          "the store is damaged or was altered")


def _sweep_stale_indexes(max_age_s: float = 3600.0) -> None:
    """Remove temporary index directories that snapshots killed mid-way left behind."""
    import time

    cutoff = time.time() - max_age_s
    for stale in Path(tempfile.gettempdir()).glob("flordb-index-*"):
        try:
            if stale.stat().st_mtime < cutoff:
                shutil.rmtree(stale, ignore_errors=True)
        except FileNotFoundError:
            pass


@dataclass(frozen=True)
class Snapshot:
    """The snapshot commit of a run, the user's HEAD then, and whether the tree differed."""

    commit: str
    head: str | None
    dirty: bool


def take(root: Path, ref_name: str, message: str) -> Snapshot:
    """Commit the working tree of the repository at ``root`` without changing its state."""
    import git

    repo = git.Repo(root)
    g = repo.git
    head = _rev(g, "HEAD")
    max_bytes = settings.read().max_file_mb * 2**20
    _sweep_stale_indexes()
    tmpdir = tempfile.mkdtemp(prefix="flordb-index-")
    try:
        index = os.path.join(tmpdir, "index")
        user_index = Path(g.rev_parse("--git-path", "index"))
        if not user_index.is_absolute():
            user_index = root / user_index
        if user_index.exists():
            # Reuse its stat cache (only changes rehash), keeping its mtime: git compares it with
            # the files' to catch an edit in the same second as the index was written.
            shutil.copy2(user_index, index)
        env = {"GIT_INDEX_FILE": index, **_IDENTITY}
        pathspecs = ["."] + [f":(exclude,literal){p}" for p in _large_files(g, root, max_bytes)]
        g.execute(["git", "add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul"],
                  istream=_nul_stdin(pathspecs), env=env)
        tree = g.execute(["git", "write-tree"], env=env)
        parents = ["-p", head] if head else []
        commit = g.execute(["git", "commit-tree", tree, *parents, "-m", message], env=env)
        # flordb's own ref is no event of the user's: their hooks (reference-transaction) do
        # not run for it.
        g.execute(["git", "-c", "core.hooksPath=/dev/null", "update-ref",
                   SNAPSHOT_REF_PREFIX + ref_name, commit])
        dirty = head is None or tree != _rev(g, "HEAD^{tree}")
        return Snapshot(commit=commit, head=head, dirty=dirty)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _rev(g, spec: str) -> str | None:
    import git

    try:
        return g.rev_parse("--verify", "-q", spec)
    except git.GitCommandError:
        return None


def _large_files(g, root: Path, max_bytes: float) -> list[str]:
    """Modified or untracked, not ignored, files above ``max_bytes`` (warned about)."""
    listed = g.ls_files("-z", "-o", "-m", "--exclude-standard").split("\0")
    large = []
    for rel in filter(None, listed):
        try:
            size = (root / rel).stat().st_size
        except OSError:
            continue  # deleted: git add -A records the deletion
        if size > max_bytes:
            large.append(rel)
            print(f"flordb: not snapshotting {rel} ({size / 2**20:.0f} MB > "
                  f"{max_bytes / 2**20:.0f} MB; set {settings.name('max_file_mb')} to change)",
                  file=sys.stderr)
    return large


def _nul_stdin(items: list[str]):
    """A file object holding ``items`` NUL-separated, for ``--pathspec-from-file=-``."""
    f = tempfile.TemporaryFile()
    f.write(b"\0".join(s.encode() for s in items))
    f.seek(0)
    return f
