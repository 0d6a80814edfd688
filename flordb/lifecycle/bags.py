"""Share and cite a released dataset version: a self-describing BagIt bag (RFC 8493).

    bag = flor.export_bag(flor.get_dataset("scans").version("1.0.0"), "scans-1.0.0")
    v = flor.import_bag("scans-1.0.0")       # in another project: verified, then released

A bag holds, under ``data/``:

- ``version.json``: the dataset, label, record type, member count, release time and the
  version's content hash (the sha256 of its manifest), which is also the bag's
  ``External-Identifier``: ``flordb:<name>@<label>#sha256:<hash>``, a citable identifier;
- ``manifest.csv``: the frozen members (``record_id, record_type, checksum``);
- ``files/``: every member file found in the project, at its record id's path;
- ``features.json`` and ``labels.csv``: the definitions of the features on the record type
  and their values as of the release (who, which workflow, when);
- ``provenance.csv``: the version's lineage (runs with code snapshot and environment,
  versions it was split from or nests).

BagIt's own sha256 manifests cover every file. Importing validates the bag (a changed or
missing file is an :class:`~flordb.errors.IntegrityError`), checks that the manifest still
hashes to the content hash, copies the files into the project, and releases the version under
the same name and label, which must then hash the same.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from flordb.errors import DatasetError, IntegrityError, NotAProjectError

if TYPE_CHECKING:
    from flordb.lifecycle.datasets import DatasetVersion
    from flordb.lifecycle.session import Session

FILES = "files"


def export(session: Session, version: DatasetVersion, dest: str | os.PathLike[str]) -> Path:
    """Write ``version`` as a bag in the new directory ``dest``; returns its path."""
    import bagit

    from flordb.lifecycle.features import get_feature
    from flordb.lifecycle.lineage import lineage
    from flordb.store import lifecycle as sql
    from flordb.store.registry import features_on

    dest = Path(dest)
    if dest.exists():
        raise DatasetError(f"{dest} exists: a bag is written to a new directory")
    version.verify()
    root = session.project_root()
    members = version.members()
    with session.reading() as conn:
        released = sql.released_at(conn, version.version_id)
        row = sql.dataset_row(conn, version.dataset)
        names = [] if row is None else features_on(conn, row[1])
    dest.mkdir(parents=True)
    present = 0
    for rid, rtype, digest in members.itertuples(index=False, name=None):
        source = root / rid
        if rtype == "file" and digest is not None and source.is_file():
            target = dest / FILES / rid
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            present += 1
    members.to_csv(dest / "manifest.csv", index=False)
    features, labels = [], []
    for name in names:
        f = get_feature(session, name)
        features.append({"name": f.name, "record_type": f.record_type, "columns": f.columns,
                         "vocabulary": f.vocabulary})
        chosen = f.values(as_of=version)
        chosen = chosen[chosen["record_id"].isin(set(members["record_id"]))]
        for _, r in chosen.iterrows():
            labels.append({"feature": name, "record_id": r["record_id"],
                           "value": json.dumps({c: _plain(r[c]) for c in f.columns}),
                           "annotator": r["annotator"], "workflow": r["workflow"],
                           "run": r["tstamp"]})
    (dest / "features.json").write_text(json.dumps(features, indent=1))
    with (dest / "labels.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, ["feature", "record_id", "value", "annotator", "workflow",
                                      "run"])
        writer.writeheader()
        writer.writerows(labels)
    lineage(session, version).to_csv(dest / "provenance.csv", index=False)
    identifier = f"flordb:{version.ref}#sha256:{version.content_hash}"
    (dest / "version.json").write_text(json.dumps({
        "dataset": version.dataset, "label": version.label, "record_type": row[1] if row else "",
        "content_hash": version.content_hash, "n_members": version.n_members,
        "files": present, "released": released, "identifier": identifier}, indent=1))
    bagit.make_bag(str(dest), {"External-Identifier": identifier,
                               "External-Description": f"dataset version {version.ref}",
                               "Bag-Software-Agent": "flordb"}, checksums=["sha256"])
    session.record_io("output", "dataset", f"bag:{version.ref}", version.content_hash)
    return dest


def import_bag(session: Session, path: str | os.PathLike[str]) -> DatasetVersion:
    """Validate the bag at ``path``, copy its files into the project and release its version
    here; returns it. Importing the same bag again returns the same version."""
    import bagit

    from flordb.lifecycle.datasets import content_hash, dataset, get_dataset
    from flordb.lifecycle.features import feature

    try:
        bag = bagit.Bag(str(path))
        bag.validate()
    except bagit.BagError as exc:
        changed = _changed(Path(path))
        why = f"{', '.join(changed[:5])} changed or missing" if changed else _first(exc)
        raise IntegrityError(f"bag {path} does not verify: {why}") from None
    data = Path(bag.path) / "data"
    meta = json.loads((data / "version.json").read_text())
    with (data / "manifest.csv").open(newline="") as f:
        manifest = [(r["record_id"], r["record_type"], r["checksum"] or None)
                    for r in csv.DictReader(f)]
    if content_hash(manifest) != meta["content_hash"]:
        raise IntegrityError(f"bag {path}: its manifest does not hash to {meta['content_hash']}")
    name, label = meta["dataset"], meta["label"]
    try:
        existing = get_dataset(session, name).version(label)
    except (DatasetError, NotAProjectError):  # not here yet (or no store yet)
        existing = None
    if existing is not None:
        if existing.content_hash != meta["content_hash"]:
            raise DatasetError(f"{name}@{label} exists here with other members")
        return existing
    root = session.project_root()
    for rid, rtype, _ in manifest:
        source = data / FILES / rid
        if source.is_file():
            target = root / rid
            if target.exists() and target.read_bytes() != source.read_bytes():
                raise DatasetError(f"{target} exists with other content than the bag's {rid}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    ds = dataset(session, name, meta["record_type"] or "file")
    for rtype in sorted({t for _, t, _ in manifest}):
        ds.add([rid for rid, t, _ in manifest if t == rtype], record_type=rtype)
    version = ds.release(label, description=f"imported from {meta['identifier']}")
    if version.content_hash != meta["content_hash"]:
        raise IntegrityError(f"{name}@{label}: the imported members hash to "
                             f"{version.content_hash}, not the bag's {meta['content_hash']}")
    for spec in json.loads((data / "features.json").read_text()):
        defined = feature(session, spec["name"], spec["record_type"],
                          {c: _TYPES[t] for c, t in spec["columns"].items()}, spec["vocabulary"])
        with (data / "labels.csv").open(newline="") as rows:
            for r in csv.DictReader(rows):
                if r["feature"] == defined.name:
                    defined.add(r["record_id"], r["annotator"], r["workflow"],
                                **json.loads(r["value"]))
    session.record_io("input", "dataset", f"bag:{version.ref}", version.content_hash)
    return version


_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


def _changed(bag: Path) -> list[str]:
    """The payload files whose sha256 differs from the bag's manifest, or are missing."""
    import hashlib

    manifest = bag / "manifest-sha256.txt"
    if not manifest.is_file():
        return []
    out = []
    for line in manifest.read_text().splitlines():
        digest, _, rel = line.partition(" ")
        file = bag / rel.strip()
        if not file.is_file() or hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            out.append(rel.strip())
    return out


def _first(exc: Exception) -> str:
    details = getattr(exc, "details", None)
    return str(details[0]) if details else str(exc)
