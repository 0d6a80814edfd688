"""The SQL of the lifecycle records: datasets, their members and versions, features and their
values, and the edges lineage walks. Rows go out as tuples and frames; what they mean is
:mod:`flordb.lifecycle`'s business."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from flordb.store.db import inserted_id, new_uid

if TYPE_CHECKING:
    import pandas

# ----------------------------------------------------------------------------- datasets


def dataset_row(conn: sqlite3.Connection, name: str) -> tuple[int, str] | None:
    """``(dataset_id, record_type)`` of dataset ``name``."""
    return conn.execute("SELECT dataset_id, record_type FROM datasets WHERE name = ?",
                        (name,)).fetchone()


def split_row(conn: sqlite3.Connection, name: str) -> tuple[int, int | None, int | None,
                                                             str] | None:
    """``(dataset_id, parent_version, split_seed, record_type)`` of dataset ``name``."""
    return conn.execute("SELECT dataset_id, parent_version, split_seed, record_type"
                        " FROM datasets WHERE name = ?", (name,)).fetchone()


def create_dataset(conn: sqlite3.Connection, name: str, record_type: str, description: str,
                   run_id: int, parent_version: int | None = None,
                   split_seed: int | None = None) -> int:
    """Insert a dataset; returns its id."""
    return inserted_id(conn.execute(
        "INSERT INTO datasets (uid, name, record_type, description, created, created_by,"
        " parent_version, split_seed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (new_uid(), name, record_type, description, time.time(), run_id, parent_version,
         split_seed)))


def datasets(conn: sqlite3.Connection) -> pandas.DataFrame:
    """Every dataset with its working-set size, versions and, for splits, their seed."""
    import pandas as pd

    return pd.read_sql_query(
        "SELECT d.name, d.record_type, d.description, d.created_by AS run_id,"
        " (SELECT COUNT(*) FROM dataset_members m WHERE m.dataset_id = d.dataset_id)"
        " AS members, (SELECT GROUP_CONCAT(label, ' ') FROM dataset_versions v"
        " WHERE v.dataset_id = d.dataset_id) AS versions, d.split_seed"
        " FROM datasets d ORDER BY d.dataset_id", conn)


def add_members(conn: sqlite3.Connection, dataset_id: int, rows: list[tuple[str, str]],
                run_id: int) -> int:
    """Add ``(record_id, record_type)`` members not there yet; returns how many were new."""
    before = conn.total_changes
    now = time.time()
    conn.executemany(
        "INSERT OR IGNORE INTO dataset_members (dataset_id, record_id, record_type, added,"
        " added_by) VALUES (?, ?, ?, ?, ?)",
        [(dataset_id, rid, rtype, now, run_id) for rid, rtype in rows])
    return conn.total_changes - before


def remove_members(conn: sqlite3.Connection, dataset_id: int, record_ids: list[str]) -> int:
    """Remove members; returns how many were there."""
    before = conn.total_changes
    conn.executemany("DELETE FROM dataset_members WHERE dataset_id = ? AND record_id = ?",
                     [(dataset_id, rid) for rid in record_ids])
    return conn.total_changes - before


def members(conn: sqlite3.Connection, dataset_id: int) -> list[tuple[str, str]]:
    """``(record_id, record_type)`` of the working set, ordered by record id."""
    return conn.execute("SELECT record_id, record_type FROM dataset_members WHERE"
                        " dataset_id = ? ORDER BY record_id", (dataset_id,)).fetchall()


def members_frame(conn: sqlite3.Connection, dataset_id: int) -> pandas.DataFrame:
    """The working set as a frame: ``record_id, record_type``."""
    import pandas as pd

    return pd.DataFrame(members(conn, dataset_id), columns=["record_id", "record_type"])


def versions(conn: sqlite3.Connection, dataset_id: int
             ) -> list[tuple[str, str, int, int, str]]:
    """``(label, content_hash, version_id, n_members, uid)`` of every release, oldest first."""
    return conn.execute("SELECT label, content_hash, version_id, n_members, uid FROM"
                        " dataset_versions WHERE dataset_id = ? ORDER BY version_id",
                        (dataset_id,)).fetchall()


def versions_frame(conn: sqlite3.Connection, dataset_id: int) -> pandas.DataFrame:
    """The releases: label, size, content hash, when and by which run."""
    import pandas as pd

    return pd.read_sql_query(
        "SELECT label, n_members, content_hash, released, released_by AS run_id,"
        " description FROM dataset_versions WHERE dataset_id = ? ORDER BY version_id",
        conn, params=(dataset_id,))


def release(conn: sqlite3.Connection, dataset_id: int, label: str, content_hash: str,
            manifest: list[tuple[str, str, str | None]], run_id: int,
            description: str, parent_version: int | None = None,
            split_spec: str | None = None, released: float | None = None, *,
            uid: str) -> int:
    """Insert version ``uid`` (its global identity) and its frozen manifest (a split's: the
    version it was split from, and how; an imported one's: when it was released where it was
    made); returns its id."""
    version_id = inserted_id(conn.execute(
        "INSERT INTO dataset_versions (uid, dataset_id, label, content_hash, n_members,"
        " released, released_by, description, parent_version, split_spec)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (uid, dataset_id, label, content_hash, len(manifest), released or time.time(),
         run_id, description, parent_version, split_spec)))
    conn.executemany(
        "INSERT INTO version_members (version_id, record_id, record_type, checksum)"
        " VALUES (?, ?, ?, ?)", [(version_id, *m) for m in manifest])
    return version_id


def version_row(conn: sqlite3.Connection, name: str, label: str | None
                ) -> tuple[int, str, str, int, str] | None:
    """``(version_id, label, content_hash, n_members, uid)`` of ``name@label`` (default: the
    latest release)."""
    sql = ("SELECT v.version_id, v.label, v.content_hash, v.n_members, v.uid"
           " FROM dataset_versions v"
           " JOIN datasets d ON d.dataset_id = v.dataset_id WHERE d.name = ?")
    if label:
        return conn.execute(sql + " AND v.label = ?", (name, label)).fetchone()
    return conn.execute(sql + " ORDER BY v.version_id DESC LIMIT 1", (name,)).fetchone()


def split_versions(conn: sqlite3.Connection, name: str
                   ) -> list[tuple[int, str, int | None, str | None]]:
    """``(version_id, label, parent_version, split_spec)`` of every version of ``name``."""
    return conn.execute(
        "SELECT v.version_id, v.label, v.parent_version, v.split_spec FROM dataset_versions v"
        " JOIN datasets d ON d.dataset_id = v.dataset_id WHERE d.name = ?"
        " ORDER BY v.version_id", (name,)).fetchall()


def manifest(conn: sqlite3.Connection, version_id: int) -> pandas.DataFrame:
    """A version's frozen members: ``record_id, record_type, checksum``."""
    import pandas as pd

    return pd.read_sql_query(
        "SELECT record_id, record_type, checksum FROM version_members WHERE version_id = ?"
        " ORDER BY record_id", conn, params=(version_id,))


def set_dataset_types(conn: sqlite3.Connection, dataset_id: int, types: list[str]) -> None:
    """Replace a dataset's types (``training``, ``testing``...)."""
    conn.execute("UPDATE datasets SET types = ? WHERE dataset_id = ?",
                 (json.dumps(sorted(set(types))), dataset_id))


def dataset_types(conn: sqlite3.Connection, dataset_id: int) -> list[str]:
    """A dataset's types."""
    return json.loads(conn.execute("SELECT types FROM datasets WHERE dataset_id = ?",
                                   (dataset_id,)).fetchone()[0])


# ----------------------------------------------------------------------------- record types


def record_type_row(conn: sqlite3.Connection, name: str) -> tuple[int, str] | None:
    """``(type_id, attributes JSON)`` of record type ``name``."""
    return conn.execute("SELECT type_id, attributes FROM record_types WHERE name = ?",
                        (name,)).fetchone()


def create_record_type(conn: sqlite3.Connection, name: str, attributes: dict[str, str],
                       run_id: int) -> int:
    """Insert a record type; returns its id."""
    return inserted_id(conn.execute(
        "INSERT INTO record_types (name, attributes, created, created_by) VALUES (?, ?, ?, ?)",
        (name, json.dumps(attributes), time.time(), run_id)))


def put_records(conn: sqlite3.Connection, type_id: int, rows: list[tuple[str, str]],
                run_id: int) -> None:
    """Insert or replace ``(record_id, attributes JSON)`` records of a type."""
    now = time.time()
    conn.executemany(
        "INSERT OR REPLACE INTO typed_records (type_id, record_id, attrs, created, created_by)"
        " VALUES (?, ?, ?, ?, ?)", [(type_id, rid, attrs, now, run_id) for rid, attrs in rows])


def records_of(conn: sqlite3.Connection, type_id: int) -> list[tuple[str, str]]:
    """``(record_id, attributes JSON)`` of every record of a type, by id."""
    return conn.execute("SELECT record_id, attrs FROM typed_records WHERE type_id = ?"
                        " ORDER BY record_id", (type_id,)).fetchall()


def existing_records(conn: sqlite3.Connection, type_id: int, record_ids: list[str]
                     ) -> set[str]:
    """The ids among ``record_ids`` that are records of the type."""
    found: set[str] = set()
    for start in range(0, len(record_ids), 500):
        batch = record_ids[start:start + 500]
        found |= {r for r, in conn.execute(
            f"SELECT record_id FROM typed_records WHERE type_id = ? AND record_id IN"
            f" ({','.join('?' * len(batch))})", (type_id, *batch))}
    return found


# ----------------------------------------------------------------------------- features


def feature_row(conn: sqlite3.Connection, name: str) -> tuple[int, str, str, str] | None:
    """``(feature_id, record_type, columns JSON, vocabulary JSON)`` of feature ``name``."""
    return conn.execute("SELECT feature_id, record_type, columns, vocabulary FROM features"
                        " WHERE name = ?", (name,)).fetchone()


def create_feature(conn: sqlite3.Connection, name: str, record_type: str,
                   columns: dict[str, str], vocabulary: dict[str, Any]) -> int:
    """Insert a feature definition; returns its id."""
    return inserted_id(conn.execute(
        "INSERT INTO features (uid, name, record_type, columns, vocabulary, created)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (new_uid(), name, record_type, json.dumps(columns), json.dumps(vocabulary),
         time.time())))


def set_vocabulary(conn: sqlite3.Connection, feature_id: int,
                   vocabulary: dict[str, Any]) -> None:
    """Replace a feature's vocabulary (grown: checked by the caller)."""
    conn.execute("UPDATE features SET vocabulary = ? WHERE feature_id = ?",
                 (json.dumps(vocabulary), feature_id))


def put_values(conn: sqlite3.Connection, feature_id: int, run_id: int,
               values: list[tuple[str, str]], annotator: str, workflow: str) -> None:
    """Store ``(record_id, value JSON)`` pairs as the run's values (replacing its earlier
    ones for the same records)."""
    now = time.time()
    conn.executemany(
        "INSERT OR REPLACE INTO feature_values (feature_id, record_id, run_id,"
        " annotator, workflow, created, value) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(feature_id, rid, run_id, annotator, workflow, now, value) for rid, value in values])


def import_values(conn: sqlite3.Connection, feature_id: int, run_id: int,
                  rows: list[tuple[str, str, str, str, float]]) -> None:
    """Store ``(record_id, value JSON, annotator, workflow, created)`` rows made elsewhere
    (an imported bag) under the importing run, keeping who made each and when."""
    conn.executemany(
        "INSERT OR REPLACE INTO feature_values (feature_id, record_id, run_id,"
        " annotator, workflow, created, value) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(feature_id, rid, run_id, who, workflow, created, value)
         for rid, value, who, workflow, created in rows])


def feature_values(conn: sqlite3.Connection, feature_id: int, as_of: float | None = None
                   ) -> list[tuple]:
    """``(record_id, value JSON, annotator, workflow, run_id, tstamp, created)``, oldest
    first; with ``as_of`` (epoch seconds), only those stored by then."""
    when = "" if as_of is None else " AND v.created <= ?"
    return conn.execute(
        "SELECT v.record_id, v.value, v.annotator, v.workflow, v.run_id, r.tstamp,"
        " v.created FROM feature_values v JOIN runs r ON r.run_id = v.run_id"
        f" WHERE v.feature_id = ?{when} ORDER BY v.created, v.run_id",
        (feature_id,) if as_of is None else (feature_id, as_of)).fetchall()


def released_at(conn: sqlite3.Connection, version_id: int) -> float:
    """When a dataset version was released (epoch seconds)."""
    return conn.execute("SELECT released FROM dataset_versions WHERE version_id = ?",
                        (version_id,)).fetchone()[0]


def read_at(conn: sqlite3.Connection, run_id: int, feature: str) -> float | None:
    """The cut-off of run ``run_id``'s (last) read of feature ``feature``: the as-of it asked
    for, else when it read; when it started if it never did; None if there is no such run."""
    row = conn.execute("SELECT COALESCE(as_of, at) FROM run_io WHERE run_id = ? AND"
                       " direction = 'input' AND kind = 'feature' AND ref = ?",
                       (run_id, feature)).fetchone()
    if row is not None:
        return row[0]
    row = conn.execute("SELECT started FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else row[0]


# ----------------------------------------------------------------------------- lineage


def lineage_edges(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    """The raw edges lineage is made of, by kind: ``released`` (run, dataset, label),
    ``split`` (parent dataset, parent label, child dataset, child label), ``nested`` (member
    ref, dataset, label), ``io`` (run, direction, kind, ref, checksum, when), ``checkpoints`` (run,
    loop, iteration), ``labelled`` (feature, run, when its first value was stored)."""
    return {
        "released": conn.execute(
            "SELECT v.released_by, d.name, v.label FROM dataset_versions v"
            " JOIN datasets d ON d.dataset_id = v.dataset_id WHERE v.released_by IS NOT NULL"
        ).fetchall(),
        "split": conn.execute(
            "SELECT pd.name, pv.label, d.name, v.label FROM dataset_versions v"
            " JOIN datasets d ON d.dataset_id = v.dataset_id"
            " JOIN dataset_versions pv ON pv.version_id = v.parent_version"
            " JOIN datasets pd ON pd.dataset_id = pv.dataset_id").fetchall(),
        "nested": conn.execute(
            "SELECT m.record_id, d.name, v.label FROM version_members m"
            " JOIN dataset_versions v ON v.version_id = m.version_id"
            " JOIN datasets d ON d.dataset_id = v.dataset_id WHERE m.record_type = 'dataset'"
        ).fetchall(),
        "io": conn.execute(  # a read's time is the cut-off it used
            "SELECT run_id, direction, kind, ref, checksum, COALESCE(as_of, at) FROM run_io"
        ).fetchall(),
        "checkpoints": conn.execute(
            "SELECT DISTINCT run_id, loop_id, iter FROM checkpoints").fetchall(),
        "labelled": conn.execute(
            "SELECT f.name, v.run_id, MIN(v.created) FROM feature_values v"
            " JOIN features f ON f.feature_id = v.feature_id GROUP BY f.name, v.run_id"
        ).fetchall(),
    }


def run_details(conn: sqlite3.Connection) -> dict[int, tuple]:
    """``run_id -> (tstamp, filename, status, snapshot, env_hash)`` of every run."""
    return {r[0]: r[1:] for r in conn.execute(
        "SELECT run_id, tstamp, filename, status, snapshot, env_hash FROM runs")}
