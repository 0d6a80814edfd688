"""Content-addressed object files under ``.flor/objects/``.

An object is stored at ``objects/<sha256[:2]>/<sha256>``. It is written to a temporary file in
the same directory and renamed into place, so a killed process leaves at most a temporary file
that nothing refers to; identical bytes are stored once. Files are not fsynced (that would put
milliseconds of disk latency on every checkpoint): after a power loss a file may be torn, and
that is why every read verifies the hash, so a torn object is detected, never trusted.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from flordb.errors import CorruptObjectError


def objects_dir(store: Path) -> Path:
    return store / "objects"


def put(store: Path, data: bytes) -> str:
    """Store ``data`` (if not present) and return its sha256."""
    digest = hashlib.sha256(data).hexdigest()
    final = objects_dir(store) / digest[:2] / digest
    if final.exists():
        return digest
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return digest


#: A temporary object file older than this was left by a writer that died (seconds).
STALE_TMP_S = 3600.0


def sweep_stale(store: Path) -> int:
    """Delete temporary object files that writers killed mid-write left behind; returns how
    many. Files younger than :data:`STALE_TMP_S` may belong to a live writer and are kept."""
    import time

    cutoff = time.time() - STALE_TMP_S
    removed = 0
    for tmp in objects_dir(store).glob("*/.tmp-*"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed += 1
        except FileNotFoundError:
            pass  # another process swept it
    return removed


def exists(store: Path, digest: str) -> bool:
    """Whether the file of object ``digest`` is present (its bytes are checked by :func:`get`)."""
    return (objects_dir(store) / digest[:2] / digest).is_file()


def get(store: Path, digest: str) -> bytes:
    """The bytes of object ``digest``; raises :class:`CorruptObjectError` if they changed."""
    path = objects_dir(store) / digest[:2] / digest
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise CorruptObjectError(f"object {path} does not match its hash")
    return data
