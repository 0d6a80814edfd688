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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from flordb.errors import DatasetError, IntegrityError
from flordb.store import lifecycle as sql
from flordb.store.db import DatabaseIntegrityError, new_uid
from flordb.store.io import file_digest

if TYPE_CHECKING:
    import pandas

    from flordb.lifecycle.session import Session
    from flordb.store.db import Connection

#: Which part of a semantic version a release bumps.
Bump = Literal["major", "minor", "patch"]
DATASET = "dataset"  # record type of a member that is a dataset version
_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_UID = re.compile(r"[0-9a-f]{32}")


def dataset(session: Session, name: str, record_type: str = "file",
            description: str = "") -> Dataset:
    """The dataset ``name``, created (by the current run) if it does not exist yet.

    ``record_type`` is the default type of its members (``file``, ``row``, ``document``...).
    """
    if not isinstance(name, str) or not name or "@" in name:
        raise DatasetError(f"a dataset name must be a non-empty str without '@': {name!r}")
    with session.writing() as (conn, run_id):
        row = sql.dataset_row(conn, name)
        if row is None:
            return Dataset(session, sql.create_dataset(conn, name, record_type, description,
                                                       run_id), name, record_type)
    return Dataset(session, row[0], name, row[1])


def get_dataset(session: Session, name: str) -> Dataset:
    """The existing dataset ``name``; raises :class:`DatasetError` when there is none. Reads
    only: it never creates a dataset nor starts a run."""
    with session.reading() as conn:
        row = sql.dataset_row(conn, name)
    if row is None:
        raise DatasetError(f"no dataset named {name!r} (flor.dataset(name) creates one)")
    return Dataset(session, row[0], name, row[1])


def datasets(session: Session) -> pandas.DataFrame:
    """Every dataset with its working-set size, versions and, for splits, their origin."""
    with session.reading() as conn:
        return sql.datasets(conn)


@dataclass(frozen=True)
class Dataset:
    """A named collection of record ids; see the module docstring."""

    session: Session = field(repr=False, compare=False)
    dataset_id: int
    name: str
    record_type: str

    def add(self, records: str | DatasetVersion | Iterable[str | DatasetVersion],
            record_type: str | None = None) -> int:
        """Add members (record ids, or dataset versions to nest); returns how many were new."""
        rows = [_member(r, record_type or self.record_type) for r in _iterable(records)]
        self._check_types(rows)
        self._check_members(rows)
        with self.session.writing() as (conn, run_id):
            return sql.add_members(conn, self.dataset_id, rows, run_id)

    def _check_types(self, rows: list[tuple[str, str]]) -> None:
        """A dataset of a declared record type takes only its records (and nested versions),
        whatever record type the call names."""
        from flordb.lifecycle.records import lookup

        other = sorted({t for _, t in rows} - {self.record_type, DATASET})
        if other and lookup(self.session, self.record_type) is not None:
            raise DatasetError(f"{self.name} is a dataset of {self.record_type} records: it "
                               f"takes no {other[0]} records")

    def _check_members(self, rows: list[tuple[str, str]]) -> None:
        """Members of a declared record type must be records of it."""
        from flordb.lifecycle.records import lookup

        for rtype in {t for _, t in rows if t != DATASET}:
            declared = lookup(self.session, rtype)
            if declared is None:
                continue
            missing = declared.missing([rid for rid, t in rows if t == rtype])
            if missing:
                raise DatasetError(f"{self.name}: {missing[0]!r} is not a {rtype} record"
                                   + (f" (and {len(missing) - 1} more)"
                                      if len(missing) > 1 else "")
                                   + f"; add it with flor.record_type({rtype!r}).add(...)")

    def types(self) -> list[str]:
        """The dataset's types (``training``, ``testing``...; a split's is its split name)."""
        with self.session.reading() as conn:
            return sql.dataset_types(conn, self.dataset_id)

    def set_types(self, *types: str) -> None:
        """Say what the dataset is for: ``set_types("training")``."""
        with self.session.writing() as (conn, _):
            sql.set_dataset_types(conn, self.dataset_id, list(types))

    def remove(self, records: str | DatasetVersion | Iterable[str | DatasetVersion]) -> int:
        """Remove members from the working set; returns how many were there."""
        ids = [_member(r, self.record_type)[0] for r in _iterable(records)]
        with self.session.writing() as (conn, _):
            return sql.remove_members(conn, self.dataset_id, ids)

    def members(self) -> pandas.DataFrame:
        """The working set: ``record_id, record_type``, ordered by record id."""
        with self.session.reading() as conn:
            return sql.members_frame(conn, self.dataset_id)

    def release(self, label: str | None = None, description: str = "", bump: Bump = "minor",
                checksums: bool = True, released: float | None = None,
                uid: str | None = None) -> DatasetVersion:
        """Freeze the working set as version ``label`` (default: the latest semantic version
        bumped by ``bump``: ``major``, ``minor`` or ``patch``; the first is ``1.0.0``). Without
        a label, a working set identical to the latest release returns that release.

        With ``checksums``, every member whose record id names a file of the project (whatever
        its record type: a ``Recording`` whose id is its path) is hashed, so the content hash
        names the bytes and a changed file is detected by :meth:`DatasetVersion.verify`
        (``files=True``). ``released`` (epoch seconds) and ``uid`` are for a version made
        elsewhere (an imported bag), which keeps the time it was released there and its global
        identity.
        """
        with self.session.writing() as (conn, run_id):
            return _release(conn, run_id, self, label, description, bump, checksums,
                            released=released, uid=uid)

    def version(self, label: str | None = None) -> DatasetVersion:
        """Released version ``label`` (default: the latest released)."""
        with self.session.reading() as conn:
            return _version(self.session, conn, self.name, label)

    def versions(self) -> pandas.DataFrame:
        """The released versions: label, size, content hash, when and by which run."""
        with self.session.reading() as conn:
            return sql.versions_frame(conn, self.dataset_id)

    def diff(self, old: str, new: str) -> pandas.DataFrame:
        """Members ``added``, ``removed`` or ``changed`` (file content) from ``old`` to ``new``."""
        return self.version(old).diff(self.version(new))


@dataclass(frozen=True)
class DatasetVersion:
    """A released, frozen version of a dataset."""

    session: Session = field(repr=False, compare=False)
    version_id: int
    dataset: str
    label: str
    content_hash: str
    n_members: int
    #: The version's global identity: the same in every project that imported it.
    uid: str

    @property
    def ref(self) -> str:
        """``name@label``: how the version is named as a member and in lineage."""
        return f"{self.dataset}@{self.label}"

    def members(self, recursive: bool = False) -> pandas.DataFrame:
        """The frozen manifest: ``record_id, record_type, checksum``. With ``recursive``, nested
        dataset versions are replaced by their own members (``via`` names the nesting)."""
        import pandas as pd

        with self.session.reading() as conn:
            frame = sql.manifest(conn, self.version_id)
            if not recursive:
                return frame
            parts = [frame[frame["record_type"] != DATASET].assign(via=self.ref)]
            nested = [_version(self.session, conn, *ref.rsplit("@", 1))
                      for ref in frame.loc[frame["record_type"] == DATASET, "record_id"]]
        for inner in nested:
            sub = inner.members(recursive=True)
            parts.append(sub.assign(via=self.ref + " > " + sub["via"]))
        return pd.concat(parts, ignore_index=True).sort_values("record_id", kind="stable") \
            .reset_index(drop=True)

    def verify(self, files: bool = False) -> None:
        """Raise :class:`IntegrityError` unless the stored members hash to the content hash
        (and, with ``files``, every hashed file still has its content)."""
        with self.session.reading() as conn:
            frame = sql.manifest(conn, self.version_id)
        manifest = list(frame.itertuples(index=False, name=None))
        if content_hash(manifest) != self.content_hash:
            raise IntegrityError(f"{self.ref}: its members no longer match its content hash")
        if files:
            root = self.session.project_root()
            changed = [rid for rid, rtype, digest in manifest
                       if digest is not None and _file_sha256(root, rid) != digest]
            if changed:
                raise IntegrityError(f"{self.ref}: {len(changed)} file(s) changed since release,"
                                     f" e.g. {changed[0]}")

    def read(self, recursive: bool = True) -> pandas.DataFrame:
        """The members, recording this version as an input of the current run. Nested
        versions are replaced by their own members (``via`` names the nesting); with
        ``recursive=False`` they stay as rows of record type ``dataset``."""
        self.verify()
        self.session.record_io("input", "dataset", self.ref, self.content_hash)
        return self.members(recursive=recursive)

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

    def split(self, fractions: dict[str, float], seed: int, group_by: str | None = None,
              stratify_by: str | None = None) -> dict[str, DatasetVersion]:
        """Seeded disjoint splits (``{"train": 0.8, "test": 0.2}``), each released as dataset
        ``<name>:<split>`` at this version's label and recorded as derived from it.

        ``group_by`` names a feature whose (newest) value groups members (a subject): a group
        is never on two sides. ``stratify_by`` names a feature whose values are spread over the
        splits in proportion. Asking again returns the recorded splits. Splitting a later
        version with the same fractions and seed reuses the split datasets, releasing new
        versions of them: members (and groups) already in a split stay there, and only new
        ones are assigned, so nothing moves from test to train.
        """
        import json

        if not fractions or any(f <= 0 for f in fractions.values()) \
                or abs(sum(fractions.values()) - 1) > 1e-9:
            raise DatasetError(f"split fractions must be positive and sum to 1: {fractions}")
        spec = json.dumps({"fractions": fractions, "seed": seed, "group_by": group_by,
                           "stratify_by": stratify_by}, sort_keys=True)
        names = {s: f"{self.dataset}:{s}" for s in fractions}
        with self.session.reading() as conn:
            made = {s: sql.split_row(conn, n) for s, n in names.items()}
            history = {s: sql.split_versions(conn, n) for s, n in names.items()}
            parent = sql.dataset_row(conn, self.dataset)
        assert parent is not None  # this version's own dataset
        existing = [s for s, row in made.items() if row is not None]
        latest = {s: h[-1] for s, h in history.items() if h}  # (id, label, parent, spec)
        if existing:
            same = all(row is not None and row[2] == seed for row in made.values()) \
                and all(v[3] in (None, spec) for v in latest.values())
            if not same:
                raise DatasetError(f"{names[existing[0]]} already exists as a split of another"
                                   f" version or seed (or with other fractions or grouping)")
            # Asked again (before or after later releases): the versions split from this one.
            mine = {s: [v for v in h if v[2] == self.version_id and v[3] in (None, spec)]
                    for s, h in history.items()}
            if all(mine.values()):
                return {s: Dataset(self.session, row[0], names[s], row[3])
                        .version(mine[s][-1][1]) for s, row in made.items() if row is not None}
        members = self.members()
        ids = members["record_id"].tolist()
        previous: dict[str, str] = {}  # the sides of the latest split: members stay there
        with self.session.reading() as conn:
            for s, (version_id, *_) in latest.items():
                previous.update(dict.fromkeys(sql.manifest(conn, version_id)["record_id"], s))
        rtype = parent[1]
        sides = _assign(ids, fractions, seed, self._values(group_by, ids, rtype),
                        self._values(stratify_by, ids, rtype), previous)
        manifest = members.set_index("record_id")
        out = {}
        with self.session.writing() as (conn, run_id):
            for s, name in names.items():
                row = made[s]
                if row is None:
                    child = Dataset(self.session, sql.create_dataset(
                        conn, name, parent[1], f"{s} split of {self.ref} (seed {seed})", run_id,
                        self.version_id, seed), name, parent[1])
                else:
                    child = Dataset(self.session, row[0], name, row[3])
                    sql.remove_members(conn, child.dataset_id,
                                       [rid for rid, _ in sql.members(conn, child.dataset_id)])
                chosen = [rid for rid in ids if sides[rid] == s]
                sql.set_dataset_types(conn, child.dataset_id,
                                      [*sql.dataset_types(conn, child.dataset_id), s])
                sql.add_members(conn, child.dataset_id,
                                [(rid, manifest.at[rid, "record_type"]) for rid in chosen],
                                run_id)
                out[s] = _release(conn, run_id, child, self.label, f"{s} split of {self.ref}",
                                  "minor", checksums=True, parent_version=self.version_id,
                                  split_spec=spec)
        return out

    def _values(self, feature_name: str | None, ids: list[str], record_type: str
                ) -> dict[str, str] | None:
        """Each member's value of ``feature_name``: an attribute of the members' record type
        when it has one, else the newest value (first column) of that feature."""
        if feature_name is None:
            return None
        from flordb.lifecycle.features import get_feature
        from flordb.lifecycle.records import lookup

        declared = lookup(self.session, record_type)
        if declared is not None and feature_name in declared.attributes:
            table = declared.records()
            values = {str(r): str(v) for r, v in zip(table["record_id"], table[feature_name])
                      if v is not None}
        else:
            chosen = get_feature(self.session, feature_name).select("newest")
            first = next(c for c in chosen.columns if c != "record_id")
            values = {str(r): str(v) for r, v in zip(chosen["record_id"], chosen[first])}
        missing = [rid for rid in ids if rid not in values]
        if missing:
            raise DatasetError(f"{len(missing)} member(s) of {self.ref} have no value of "
                               f"{feature_name!r} to split by, e.g. {missing[0]!r}")
        return values


def _assign(ids: list[str], fractions: dict[str, float], seed: int,
            groups: dict[str, str] | None, strata: dict[str, str] | None,
            previous: dict[str, str]) -> dict[str, str]:
    """Member -> split. Plain first splits cut one seeded permutation (so a seed keeps its
    split); otherwise units (groups, or members) keep their earlier side, and the rest go,
    in a seeded order, to the split furthest below its share of their stratum."""
    from collections import Counter

    import numpy as np

    rng = np.random.default_rng(seed)
    names = list(fractions)
    if groups is None and strata is None and not previous:
        order = rng.permutation(len(ids))
        out, start = {}, 0
        for k, s in enumerate(names):
            stop = len(ids) if k == len(names) - 1 else start + int(len(ids) * fractions[s])
            out.update({ids[i]: s for i in order[start:stop]})
            start = stop
        return out
    units: dict[str, list[str]] = {}
    for rid in ids:
        units.setdefault(groups[rid] if groups else rid, []).append(rid)
    stratum = {key: Counter(strata[r] for r in members).most_common(1)[0][0] if strata else ""
               for key, members in units.items()}
    side: dict[str, str] = {}
    for key, members in units.items():
        was = sorted({previous[r] for r in members if r in previous})
        if len(was) > 1:
            raise DatasetError(f"group {key!r} was split over {was} in the earlier release: "
                               "its members cannot all stay where they were")
        if was:
            side[key] = was[0]
    size: Counter[str] = Counter()
    for key, members in units.items():
        size[stratum[key]] += len(members)
    count: Counter[tuple[str, str]] = Counter()
    for key, s in side.items():
        count[(stratum[key], s)] += len(units[key])
    free = sorted(k for k in units if k not in side)
    for i in rng.permutation(len(free)):
        key = free[i]
        st = stratum[key]
        s = max(names, key=lambda n: fractions[n] * size[st] - count[(st, n)])
        side[key] = s
        count[(st, s)] += len(units[key])
    return {rid: side[key] for key, members in units.items() for rid in members}


def _release(conn: Connection, run_id: int, ds: Dataset, label: str | None,
             description: str, bump: Bump, checksums: bool, parent_version: int | None = None,
             split_spec: str | None = None, released: float | None = None,
             uid: str | None = None) -> DatasetVersion:
    versions = sql.versions(conn, ds.dataset_id)
    labels = [v[0] for v in versions]
    if label in labels:
        raise DatasetError(f"{ds.name} already has a version {label!r}")
    members = sql.members(conn, ds.dataset_id)
    root = ds.session.project_root()
    manifest = [(rid, rtype, _file_sha256(root, rid) if checksums and rtype != DATASET
                 else None) for rid, rtype in members]
    digest = content_hash(manifest)
    if label is None and versions and versions[-1][1] == digest:
        latest = versions[-1]  # nothing changed: the latest release is this version
        return DatasetVersion(ds.session, latest[2], ds.name, latest[0], digest, latest[3],
                              latest[4])
    label = label or _bump(labels, bump)
    if uid is not None and not (isinstance(uid, str) and _UID.fullmatch(uid)):
        raise IntegrityError(f"{ds.name}@{label}: {uid!r} is not a version identity "
                             "(32 hex digits)")
    uid = uid or new_uid()
    try:
        version_id = sql.release(conn, ds.dataset_id, label, digest, manifest, run_id,
                                 description, parent_version, split_spec, released, uid=uid)
    except DatabaseIntegrityError:
        raise IntegrityError(f"{ds.name}@{label}: this project already has another version "
                             f"with the identity {uid}") from None
    return DatasetVersion(ds.session, version_id, ds.name, label, digest, len(manifest), uid)


def content_hash(manifest: Iterable[tuple[str, str, str | None]]) -> str:
    """sha256 of the sorted ``(record_id, record_type, checksum)`` lines of a manifest."""
    h = hashlib.sha256()
    for rid, rtype, digest in sorted(manifest):
        h.update(f"{rid}\t{rtype}\t{digest or ''}\n".encode())
    return h.hexdigest()


def _version(session: Session, conn: Connection, name: str, label: str | None
             ) -> DatasetVersion:
    row = sql.version_row(conn, name, label)
    if row is None:
        raise DatasetError(f"no released version {label or '(any)'} of dataset {name!r}")
    return DatasetVersion(session, row[0], name, row[1], row[2], row[3], row[4])


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
    """The sha256 of the file ``record_id`` names (relative to the project), if it names one."""
    path = Path(record_id)
    try:
        found = file_digest(path if path.is_absolute() else root / path)
    except (OSError, ValueError):  # not a usable path (too long, a NUL): names no file
        return None
    return found[0] if found else None
