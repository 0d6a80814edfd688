"""Versioned datasets: named collections of record ids with frozen, hashed releases.

    images = flor.dataset("images", record_type="file")
    images.add(["img/001.png", "img/002.png"])
    v1 = images.release("1.0.0")                # frozen manifest + content hash
    images.remove("img/002.png")
    v1.members()                                # still exactly the released members
    train, test = v1.split({"train": 0.8, "test": 0.2}, seed=0).values()
    rows = train.read()                         # records the version as this run's input

A dataset's *working set* changes with :meth:`Dataset.add` and :meth:`Dataset.remove`; a
*version* (:meth:`Dataset.release`) freezes the member manifest (record id, record type and,
for files, a sha256 of their content) and its hash. Members may themselves be dataset
versions (nesting). Every change records the run that made it.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flordb.errors import DatasetError, IntegrityError
from flordb.runtime import current as _runtime
from flordb.store.db import inserted_id
from flordb.store.io import file_digest

if TYPE_CHECKING:
    import sqlite3

    import pandas

DATASET = "dataset"  # record type of a member that is a dataset version
_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def dataset(name: str, record_type: str = "file", description: str = "") -> Dataset:
    """The dataset ``name``, created (by the current run) if it does not exist yet.

    ``record_type`` is the default type of its members (``file``, ``row``, ``document``...).
    """
    if not isinstance(name, str) or not name or "@" in name:
        raise DatasetError(f"a dataset name must be a non-empty str without '@': {name!r}")
    with _runtime().writing() as (conn, run_id):
        row = conn.execute("SELECT dataset_id, record_type FROM datasets WHERE name = ?",
                           (name,)).fetchone()
        if row is None:
            cur = conn.execute(
                "INSERT INTO datasets (name, record_type, description, created, created_by)"
                " VALUES (?, ?, ?, ?, ?)", (name, record_type, description, time.time(), run_id))
            return Dataset(inserted_id(cur), name, record_type)
    return Dataset(row[0], name, row[1])


def datasets() -> pandas.DataFrame:
    """Every dataset with its working-set size, versions and, for splits, their origin."""
    import pandas as pd

    with _runtime().reading() as conn:
        return pd.read_sql_query(
            "SELECT d.name, d.record_type, d.description, d.created_by AS run_id,"
            " (SELECT COUNT(*) FROM dataset_members m WHERE m.dataset_id = d.dataset_id)"
            " AS members, (SELECT GROUP_CONCAT(label, ' ') FROM dataset_versions v"
            " WHERE v.dataset_id = d.dataset_id) AS versions, d.split_seed"
            " FROM datasets d ORDER BY d.dataset_id", conn)


@dataclass(frozen=True)
class Dataset:
    """A named collection of record ids; see the module docstring."""

    dataset_id: int
    name: str
    record_type: str

    def add(self, records: str | DatasetVersion | Iterable[str | DatasetVersion],
            record_type: str | None = None) -> int:
        """Add members (record ids, or dataset versions to nest); returns how many were new."""
        rows = [_member(r, record_type or self.record_type) for r in _iterable(records)]
        with _runtime().writing() as (conn, run_id):
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO dataset_members (dataset_id, record_id, record_type,"
                " added, added_by) VALUES (?, ?, ?, ?, ?)",
                [(self.dataset_id, rid, rtype, time.time(), run_id) for rid, rtype in rows])
            return conn.total_changes - before

    def remove(self, records: str | DatasetVersion | Iterable[str | DatasetVersion]) -> int:
        """Remove members from the working set; returns how many were there."""
        ids = [_member(r, self.record_type)[0] for r in _iterable(records)]
        with _runtime().writing() as (conn, _):
            before = conn.total_changes
            conn.executemany("DELETE FROM dataset_members WHERE dataset_id = ? AND record_id = ?",
                             [(self.dataset_id, rid) for rid in ids])
            return conn.total_changes - before

    def members(self) -> pandas.DataFrame:
        """The working set: ``record_id, record_type``, ordered by record id."""
        import pandas as pd

        with _runtime().reading() as conn:
            return pd.read_sql_query(
                "SELECT record_id, record_type FROM dataset_members WHERE dataset_id = ?"
                " ORDER BY record_id", conn, params=(self.dataset_id,))

    def release(self, label: str | None = None, description: str = "", bump: str = "minor",
                checksums: bool = True) -> DatasetVersion:
        """Freeze the working set as version ``label`` (default: the latest semantic version
        bumped by ``bump``: ``major``, ``minor`` or ``patch``; the first is ``1.0.0``). Without
        a label, a working set identical to the latest release returns that release.

        With ``checksums``, members of type ``file`` found under the project are hashed, so a
        changed file is detected by :meth:`DatasetVersion.verify` (``files=True``).
        """
        with _runtime().writing() as (conn, run_id):
            return _release(conn, run_id, self, label, description, bump, checksums)

    def version(self, label: str | None = None) -> DatasetVersion:
        """Released version ``label`` (default: the latest released)."""
        with _runtime().reading() as conn:
            return _version(conn, self.name, label)

    def versions(self) -> pandas.DataFrame:
        """The released versions: label, size, content hash, when and by which run."""
        import pandas as pd

        with _runtime().reading() as conn:
            return pd.read_sql_query(
                "SELECT label, n_members, content_hash, released, released_by AS run_id,"
                " description FROM dataset_versions WHERE dataset_id = ? ORDER BY version_id",
                conn, params=(self.dataset_id,))

    def diff(self, old: str, new: str) -> pandas.DataFrame:
        """Members ``added``, ``removed`` or ``changed`` (file content) from ``old`` to ``new``."""
        return self.version(old).diff(self.version(new))


@dataclass(frozen=True)
class DatasetVersion:
    """A released, frozen version of a dataset."""

    version_id: int
    dataset: str
    label: str
    content_hash: str
    n_members: int

    @property
    def ref(self) -> str:
        """``name@label``: how the version is named as a member and in lineage."""
        return f"{self.dataset}@{self.label}"

    def members(self, recursive: bool = False) -> pandas.DataFrame:
        """The frozen manifest: ``record_id, record_type, checksum``. With ``recursive``, nested
        dataset versions are replaced by their own members (``via`` names the nesting)."""
        import pandas as pd

        with _runtime().reading() as conn:
            frame = _manifest(conn, self.version_id)
            if not recursive:
                return frame
            parts = [frame[frame["record_type"] != DATASET].assign(via=self.ref)]
            nested = [_version(conn, *ref.rsplit("@", 1))
                      for ref in frame.loc[frame["record_type"] == DATASET, "record_id"]]
        for inner in nested:
            sub = inner.members(recursive=True)
            parts.append(sub.assign(via=self.ref + " > " + sub["via"]))
        return pd.concat(parts, ignore_index=True).sort_values("record_id", kind="stable") \
            .reset_index(drop=True)

    def verify(self, files: bool = False) -> None:
        """Raise :class:`IntegrityError` unless the stored members hash to the content hash
        (and, with ``files``, every hashed file still has its content)."""
        with _runtime().reading() as conn:
            frame = _manifest(conn, self.version_id)
        manifest = list(frame.itertuples(index=False, name=None))
        if content_hash(manifest) != self.content_hash:
            raise IntegrityError(f"{self.ref}: its members no longer match its content hash")
        if files:
            root = _runtime().project_root()
            changed = [rid for rid, rtype, digest in manifest
                       if digest is not None and _file_sha256(root, rid) != digest]
            if changed:
                raise IntegrityError(f"{self.ref}: {len(changed)} file(s) changed since release,"
                                     f" e.g. {changed[0]}")

    def read(self) -> pandas.DataFrame:
        """The members, recording this version as an input of the current run."""
        self.verify()
        _runtime().record_io("input", "dataset", self.ref, self.content_hash)
        return self.members()

    def diff(self, other: DatasetVersion) -> pandas.DataFrame:
        """Members ``added``, ``removed`` or ``changed`` going from this version to ``other``."""
        import pandas as pd

        a, b = self.members().set_index("record_id"), other.members().set_index("record_id")
        rows = [(r, a.at[r, "record_type"], "removed") for r in a.index.difference(b.index)]
        rows += [(r, b.at[r, "record_type"], "added") for r in b.index.difference(a.index)]
        both = a.index.intersection(b.index)
        rows += [(r, b.at[r, "record_type"], "changed") for r in both
                 if a.at[r, "checksum"] != b.at[r, "checksum"]]
        return pd.DataFrame(rows, columns=["record_id", "record_type", "change"]) \
            .sort_values("record_id").reset_index(drop=True)

    def split(self, fractions: dict[str, float], seed: int) -> dict[str, DatasetVersion]:
        """Seeded disjoint splits (``{"train": 0.8, "test": 0.2}``), each released as dataset
        ``<name>:<split>`` at this version's label and recorded as derived from it.

        The same fractions and seed always give the same members; asking again returns the
        recorded splits.
        """
        import numpy as np

        if not fractions or any(f <= 0 for f in fractions.values()) \
                or abs(sum(fractions.values()) - 1) > 1e-9:
            raise DatasetError(f"split fractions must be positive and sum to 1: {fractions}")
        ids = self.members()["record_id"].tolist()
        order = np.random.default_rng(seed).permutation(len(ids))
        out, start = {}, 0
        names = list(fractions)
        for k, split_name in enumerate(names):
            last = k == len(names) - 1
            stop = len(ids) if last else start + int(len(ids) * fractions[split_name])
            out[split_name] = self._derived(split_name, [ids[i] for i in order[start:stop]], seed)
            start = stop
        return out

    def _derived(self, split_name: str, ids: list[str], seed: int) -> DatasetVersion:
        name = f"{self.dataset}:{split_name}"
        with _runtime().reading() as conn:
            row = conn.execute("SELECT dataset_id, parent_version, split_seed, record_type"
                               " FROM datasets WHERE name = ?", (name,)).fetchone()
            rtype = conn.execute("SELECT record_type FROM datasets WHERE name = ?",
                                 (self.dataset,)).fetchone()[0]
        if row is not None:
            if (row[1], row[2]) != (self.version_id, seed):
                raise DatasetError(f"{name} already exists as a split of another version or seed")
            return Dataset(row[0], name, row[3]).version(self.label)
        manifest = self.members().set_index("record_id")
        with _runtime().writing() as (conn, run_id):
            cur = conn.execute(
                "INSERT INTO datasets (name, record_type, description, created, created_by,"
                " parent_version, split_seed) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, rtype, f"{split_name} split of {self.ref} (seed {seed})", time.time(),
                 run_id, self.version_id, seed))
            child = Dataset(inserted_id(cur), name, rtype)
            conn.executemany(
                "INSERT INTO dataset_members (dataset_id, record_id, record_type, added,"
                " added_by) VALUES (?, ?, ?, ?, ?)",
                [(child.dataset_id, rid, manifest.at[rid, "record_type"], time.time(), run_id)
                 for rid in ids])
            return _release(conn, run_id, child, self.label, f"{split_name} split of {self.ref}",
                            "minor", checksums=True)


def _release(conn: sqlite3.Connection, run_id: int, ds: Dataset, label: str | None,
             description: str, bump: str, checksums: bool) -> DatasetVersion:
    versions = conn.execute("SELECT label, content_hash, version_id, n_members FROM"
                            " dataset_versions WHERE dataset_id = ? ORDER BY version_id",
                            (ds.dataset_id,)).fetchall()
    labels = [v[0] for v in versions]
    if label in labels:
        raise DatasetError(f"{ds.name} already has a version {label!r}")
    members = conn.execute(
        "SELECT record_id, record_type FROM dataset_members WHERE dataset_id = ?"
        " ORDER BY record_id", (ds.dataset_id,)).fetchall()
    root = _runtime().project_root()
    manifest = [(rid, rtype, _file_sha256(root, rid) if checksums and rtype == "file" else None)
                for rid, rtype in members]
    digest = content_hash(manifest)
    if label is None and versions and versions[-1][1] == digest:
        latest = versions[-1]  # nothing changed: the latest release is this version
        return DatasetVersion(latest[2], ds.name, latest[0], digest, latest[3])
    label = label or _bump(labels, bump)
    cur = conn.execute(
        "INSERT INTO dataset_versions (dataset_id, label, content_hash, n_members, released,"
        " released_by, description) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (ds.dataset_id, label, digest, len(manifest), time.time(), run_id, description))
    version_id = inserted_id(cur)
    conn.executemany(
        "INSERT INTO version_members (version_id, record_id, record_type, checksum)"
        " VALUES (?, ?, ?, ?)", [(version_id, *m) for m in manifest])
    return DatasetVersion(version_id, ds.name, label, digest, len(manifest))


def content_hash(manifest: Iterable[tuple[str, str, str | None]]) -> str:
    """sha256 of the sorted ``(record_id, record_type, checksum)`` lines of a manifest."""
    h = hashlib.sha256()
    for rid, rtype, digest in sorted(manifest):
        h.update(f"{rid}\t{rtype}\t{digest or ''}\n".encode())
    return h.hexdigest()


def _version(conn: sqlite3.Connection, name: str, label: str | None) -> DatasetVersion:
    sql = ("SELECT v.version_id, v.label, v.content_hash, v.n_members FROM dataset_versions v"
           " JOIN datasets d ON d.dataset_id = v.dataset_id WHERE d.name = ?")
    row = conn.execute(sql + (" AND v.label = ?" if label else " ORDER BY v.version_id DESC"
                              " LIMIT 1"), (name, label) if label else (name,)).fetchone()
    if row is None:
        raise DatasetError(f"no released version {label or '(any)'} of dataset {name!r}")
    return DatasetVersion(row[0], name, row[1], row[2], row[3])


def _manifest(conn: sqlite3.Connection, version_id: int) -> pandas.DataFrame:
    import pandas as pd

    return pd.read_sql_query(
        "SELECT record_id, record_type, checksum FROM version_members WHERE version_id = ?"
        " ORDER BY record_id", conn, params=(version_id,))


def _iterable(records) -> list:
    if isinstance(records, (str, DatasetVersion)) or not isinstance(records, Iterable):
        return [records]
    return list(records)


def _member(record, record_type: str) -> tuple[str, str]:
    if isinstance(record, DatasetVersion):
        return record.ref, DATASET
    if isinstance(record, Dataset):
        raise DatasetError(f"nest a released version of {record.name}, not the dataset itself")
    return str(record), record_type


def _bump(labels: list[str], part: str) -> str:
    versions = sorted(tuple(map(int, m.groups())) for m in map(_SEMVER.match, labels) if m)
    if not versions:
        return "1.0.0"
    major, minor, patch = versions[-1]
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    if part == "patch":
        return f"{major}.{minor}.{patch + 1}"
    raise DatasetError(f"bump must be major, minor or patch, not {part!r}")


def _file_sha256(root: Path, record_id: str) -> str | None:
    path = Path(record_id)
    found = file_digest(path if path.is_absolute() else root / path)
    return found[0] if found else None
