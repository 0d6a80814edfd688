"""Opening the store: where it lives, its SQLite connections and their settings."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flordb import settings
from flordb.errors import NotAProjectError
from flordb.store.schema import check_version, migrate

#: A connection to the store, as the layers above hand it to the store's functions.
Connection = sqlite3.Connection
#: What the store's database raises when it cannot do as asked (locked, damaged, full,
#: read-only): above the store, code names this, never SQLite.
DatabaseError = sqlite3.Error
#: A write the store's constraints refuse (a row whose identity it already has).
DatabaseIntegrityError = sqlite3.IntegrityError

STORE_DIRNAME = ".flor"
DB_FILENAME = "flor.db"
#: Seconds a writer waits for another process's write transaction before giving up.
BUSY_TIMEOUT_S = 600.0


def store_dir(root: Path) -> Path:
    """The ``.flor`` directory of the project at ``root`` (``$FLORDB_DIR`` overrides it)."""
    override = settings.read().store_dir
    return override if override is not None else root / STORE_DIRNAME


def create_store_dir(root: Path) -> Path:
    """Create ``.flor/`` (ignored by git through its own ``.gitignore``) and return it."""
    path = store_dir(root)
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# created by flordb: keep the store out of git status\n*\n")
    return path


def connect_writer(root: Path) -> sqlite3.Connection:
    """A read-write connection in autocommit mode, schema migrated, WAL on."""
    path = create_store_dir(root) / DB_FILENAME
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    migrate(conn)
    return conn


def writable(root: Path) -> bool:
    """Whether this process may write the store of ``root`` (its directory and database)."""
    path = store_dir(root) / DB_FILENAME
    return os.access(path.parent, os.W_OK) and os.access(path, os.W_OK)


def connect_reader(root: Path) -> sqlite3.Connection:
    """A connection that cannot write (``query_only``); raises if there is no store.

    A store in a directory this process cannot write (an archive, a read-only mount) is opened
    as immutable: SQLite then needs no lock or ``-shm`` file, and nothing is written.
    """
    path = store_dir(root) / DB_FILENAME
    if not path.exists():
        raise NotAProjectError(
            f"no flordb store at {path.parent} (run a script that logs with flordb first)"
        )
    if writable(root):
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        migrate(conn)
    else:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True,
                               isolation_level=None)
        check_version(conn)
    conn.execute("PRAGMA query_only = ON")
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back on any exception.

    Taking the write lock up front avoids the read-to-write upgrade that makes concurrent
    SQLite writers fail with ``database is locked`` despite a busy timeout.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back already (a full disk)
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the original error says what went wrong; this one would hide it
        raise
    conn.execute("COMMIT")


@contextmanager
def discarded_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``ROLLBACK`` whatever happens: writes that must not stay (a
    replay re-executing code that made lifecycle records) still see a consistent store."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


#: errno values (and SQLite messages) that mean the store cannot be written, not a bug.
_FAULT_ERRNOS = {28: "the disk is full", 30: "the file system is read-only",
                 13: "permission denied", 5: "an I/O error", 122: "the disk quota is exceeded"}
_FAULT_MESSAGES = {"disk is full": "the disk is full", "readonly database":
                   "the store is read-only", "disk i/o error": "an I/O error",
                   "unable to open database": "the store cannot be opened",
                   "malformed": "the store is damaged", "not a database": "the store is damaged"}


def new_uid() -> str:
    """A global identity for a new run or record: 32 hex digits of a random UUID, the same on
    every machine the record reaches (local row ids are this store's only)."""
    return uuid.uuid4().hex


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The rowid of the row an ``INSERT`` through ``cur`` just made."""
    rowid = cur.lastrowid
    if rowid is None:
        raise sqlite3.InterfaceError("no row was inserted")
    return rowid


def store_fault(exc: BaseException | None) -> str | None:
    """What went wrong, in a few words, when ``exc`` is the store failing (full disk,
    read-only, damaged, I/O) rather than a bug; None otherwise."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in _FAULT_ERRNOS:
            return _FAULT_ERRNOS[exc.errno]
        if isinstance(exc, sqlite3.Error):
            text = str(exc).lower()
            for key, cause in _FAULT_MESSAGES.items():
                if key in text:
                    return cause
        exc = exc.__cause__
    return None
