"""Share and cite a released dataset version: a self-describing BagIt bag (RFC 8493).

    bag = flor.export_bag(flor.get_dataset("scans").version("1.0.0"), "scans-1.0.0")
    v = flor.import_bag("scans-1.0.0")       # in another project: verified, then released

A bag holds, under ``data/``:

- ``version.json``: the dataset, label, record type, member count, files, release time and
  the version's content hash (the sha256 of its manifest, which holds each member file's
  sha256: the hash names members and bytes), which is also the bag's ``External-Identifier``:
  ``flordb:<name>@<label>#sha256:<hash>``, a citable identifier;
- ``manifest.csv``: the frozen members (``record_id, record_type, checksum``);
- ``files/``: every member that names a file of the project, whatever its record type (a
  ``Recording`` whose id is its path), at its record id's path;
- ``records.json``: the record types of the members and of the records they reference
  (``Recording`` -> ``Speaker``), with those records and their attributes;
- ``features.json`` and ``labels.csv``: the features on those record types and every value
  stored by the release, each with its annotator, workflow, time and run;
- ``provenance.csv``: the version's lineage (runs with code snapshot and environment,
  versions it was split from or nests).

BagIt's own sha256 manifests cover every file. Importing validates the bag and names the file
that fails (changed, missing, or not in the manifest; a changed manifest), checks that the
manifest still hashes to the content hash, copies the files into the project, recreates the
record types, records, features and every annotator's values with their times, and releases
the version under the same name, label and release time, which must then hash the same. So the
same grouped split, the same ``training_data(..., as_of=<version>)`` and the same majority
votes come out at both sites. Importing twice changes nothing.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flordb.errors import DatasetError, IntegrityError, NotAProjectError

if TYPE_CHECKING:
    import pandas

    from flordb.lifecycle.datasets import DatasetVersion
    from flordb.lifecycle.session import Session

FILES = "files"
LABEL_COLUMNS = ["feature", "record_id", "value", "annotator", "workflow", "created", "run"]


def export(session: Session, version: DatasetVersion, dest: str | os.PathLike[str],
           fetch: str | None = None) -> Path:
    """Write ``version`` as a bag in the new directory ``dest``; returns its path.

    With ``fetch`` (a base URL, e.g. ``file:///shared/lab`` or ``https://data.lab.org/v1``),
    member files are not copied: each gets a ``fetch.txt`` entry ``<fetch>/<path>`` and its
    sha256 in the payload manifest, so the bag still names and checks every byte (a "holey"
    bag, for payloads too large to copy)."""
    import bagit

    from flordb.lifecycle.lineage import lineage

    dest = Path(dest)
    if dest.exists():
        raise DatasetError(f"{dest} exists: a bag is written to a new directory")
    version.verify(files=True)
    root = session.project_root().resolve()
    members = version.members()
    with session.reading() as conn:
        from flordb.store import lifecycle as sql

        released = sql.released_at(conn, version.version_id)
        row = sql.dataset_row(conn, version.dataset)
    dest.mkdir(parents=True)
    present, holes = 0, []
    for rid, _, digest in members.itertuples(index=False, name=None):
        source = _inside(root, rid)
        if digest is not None and source is not None and source.is_file():
            rel = source.relative_to(root).as_posix()
            present += 1
            if fetch is not None:
                holes.append((rel, digest, source.stat().st_size))
                continue
            target = dest / FILES / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    members.to_csv(dest / "manifest.csv", index=False)
    records, ids = _records(session, members)
    (dest / "records.json").write_text(json.dumps(records, indent=1))
    types = sorted((set(records) | set(members["record_type"])) - {"dataset"})
    features, labels = _labels(session, types, ids, version)
    (dest / "features.json").write_text(json.dumps(features, indent=1))
    with (dest / "labels.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, LABEL_COLUMNS)
        writer.writeheader()
        writer.writerows(labels)
    lineage(session, version).to_csv(dest / "provenance.csv", index=False)
    identifier = f"flordb:{version.ref}#sha256:{version.content_hash}"
    (dest / "version.json").write_text(json.dumps({
        "dataset": version.dataset, "label": version.label, "record_type": row[1] if row else "",
        "content_hash": version.content_hash, "n_members": version.n_members,
        "uid": version.uid,
        "files": present, "records": sum(len(t["records"]) for t in records.values()),
        "labels": len(labels), "released": released, "identifier": identifier}, indent=1))
    bagit.make_bag(str(dest), {"External-Identifier": identifier,
                               "External-Description": f"dataset version {version.ref}",
                               "Bag-Software-Agent": "flordb"}, checksums=["sha256"])
    if holes:
        _add_holes(dest, holes, fetch or "")
    session.record_io("output", "dataset", f"bag:{version.ref}", version.content_hash)
    return dest


def _add_holes(bag: Path, holes: list[tuple[str, str, int]], base: str) -> None:
    """List files that stay outside the bag: their sha256 in the payload manifest, where to
    fetch them in ``fetch.txt``, their bytes in Payload-Oxum; then the tag manifests anew."""
    import bagit

    with (bag / "manifest-sha256.txt").open("a") as manifest:
        manifest.writelines(f"{digest}  data/{FILES}/{rel}\n" for rel, digest, _ in holes)
    (bag / "fetch.txt").write_text("".join(
        f"{base.rstrip('/')}/{rel} {size} data/{FILES}/{rel}\n" for rel, _, size in holes))
    b = bagit.Bag(str(bag))
    size, count = map(int, b.info["Payload-Oxum"].split("."))
    b.info["Payload-Oxum"] = f"{size + sum(s for *_, s in holes)}.{count + len(holes)}"
    b.save()


def _inside(root: Path, record_id: str) -> Path | None:
    """The file of the project ``record_id`` names, or None when it names none there."""
    try:
        path = Path(record_id)
        full = (path if path.is_absolute() else root / path).resolve()
        full.relative_to(root)
    except (OSError, ValueError):
        return None
    return full


def _records(session: Session, members: pandas.DataFrame
             ) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The record types of ``members`` and of what they reference, transitively, each with
    its attributes and the records the bag needs; and every record id among them."""
    from flordb.lifecycle.records import lookup

    wanted: dict[str, set[str]] = {}
    for rid, rtype in members[["record_id", "record_type"]].itertuples(index=False):
        wanted.setdefault(rtype, set()).add(str(rid))
    out: dict[str, dict[str, Any]] = {}
    todo = list(wanted)
    while todo:
        name = todo.pop()
        declared = lookup(session, name)
        if declared is None:
            continue
        table = declared.records()
        rows = table[table["record_id"].isin(wanted[name])]
        entry = out.setdefault(name, {"attributes": declared.attributes, "records": []})
        known = {r["record_id"] for r in entry["records"]}
        entry["records"] += [{k: _plain(v) for k, v in r.items()}
                             for r in rows.to_dict("records") if r["record_id"] not in known]
        for attribute, t in declared.attributes.items():
            if t.startswith("ref:"):
                target = t[4:]
                refs = {str(v) for v in rows[attribute] if v is not None}
                if refs - wanted.get(target, set()):
                    wanted.setdefault(target, set()).update(refs)
                    todo.append(target)
    ids = {r["record_id"] for t in out.values() for r in t["records"]} | set(
        members["record_id"].astype(str))
    return out, ids


def _labels(session: Session, record_types: list[str], ids: set[str], version: DatasetVersion
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The features on ``record_types`` and every value of ``ids`` stored by the release."""
    from flordb.lifecycle.features import get_feature
    from flordb.store.registry import features_on

    with session.reading() as conn:
        names = sorted({n for t in record_types for n in features_on(conn, t)})
    features, labels = [], []
    for name in names:
        f = get_feature(session, name)
        features.append({"name": f.name, "record_type": f.record_type, "columns": f.columns,
                         "vocabulary": f.vocabulary})
        values = f.values(as_of=version)
        for _, r in values[values["record_id"].isin(ids)].iterrows():
            labels.append({"feature": name, "record_id": r["record_id"],
                           "value": json.dumps({c: _plain(r[c]) for c in f.columns}),
                           "annotator": r["annotator"], "workflow": r["workflow"],
                           "created": repr(float(r["created"])), "run": r["tstamp"]})
    return features, labels


def import_bag(session: Session, path: str | os.PathLike[str]) -> DatasetVersion:
    """Validate the bag at ``path``, copy its files into the project, recreate its records and
    labels, and release its version here; returns it. Importing the same bag again returns the
    same version and changes nothing."""
    from flordb.lifecycle.datasets import content_hash, dataset, get_dataset

    bag = Path(path)
    data, fetched = _validate(bag)
    meta = json.loads((data / "version.json").read_text())
    with (data / "manifest.csv").open(newline="") as f:
        manifest = [(r["record_id"], r["record_type"], r["checksum"] or None)
                    for r in csv.DictReader(f)]
    if content_hash(manifest) != meta["content_hash"]:
        raise IntegrityError(f"bag {path}: data/manifest.csv does not hash to "
                             f"{meta['content_hash']}")
    name, label = meta["dataset"], meta["label"]
    try:
        existing = get_dataset(session, name).version(label)
    except (DatasetError, NotAProjectError):  # not here yet (or no store yet)
        existing = None
    if existing is not None:
        if existing.content_hash != meta["content_hash"]:
            raise DatasetError(f"{name}@{label} exists here with other members")
        return existing
    root = session.project_root().resolve()
    copies = []
    for rid, _, digest in manifest:
        target = _inside(root, rid)
        if digest is None or target is None:
            continue
        rel = target.relative_to(root).as_posix()
        source = fetched.get(f"data/{FILES}/{rel}", data / FILES / rel)
        if not source.is_file():
            continue
        if target.exists() and target.read_bytes() != source.read_bytes():
            raise DatasetError(f"{target} exists with other content than the bag's {rid}")
        copies.append((source, target))
    records = json.loads((data / "records.json").read_text()) \
        if (data / "records.json").is_file() else {}
    _import_records(session, records)
    for source, target in copies:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    ds = dataset(session, name, meta["record_type"] or "file")
    for rtype in sorted({t for _, t, _ in manifest}):
        ds.add([rid for rid, t, _ in manifest if t == rtype], record_type=rtype)
    version = ds.release(label, description=f"imported from {meta['identifier']}",
                         released=meta.get("released"), uid=meta.get("uid"))
    if version.content_hash != meta["content_hash"]:
        raise IntegrityError(f"{name}@{label}: the imported members hash to "
                             f"{version.content_hash}, not the bag's {meta['content_hash']}")
    _import_labels(session, data)
    session.record_io("input", "dataset", f"bag:{version.ref}", version.content_hash)
    return version


def _validate(bag: Path) -> tuple[Path, dict[str, Path]]:
    """The bag's payload directory once it validates, and where each file its ``fetch.txt``
    lists is found; else an :class:`IntegrityError` naming the file: a tag file that changed,
    a payload file that changed, is missing or is not in the manifest."""
    import bagit

    try:
        b = bagit.Bag(str(bag))
        holes = {name: url for url, _, name in b.fetch_entries()}
        if not holes:
            b.validate()
        else:  # files to fetch are checked where they are, against the same manifest
            b.validate_fetch()
            _check_holey(bag, holes)
    except bagit.BagError as exc:
        problems = _changed(bag, "tagmanifest-sha256.txt") or _changed(
            bag, "manifest-sha256.txt") or [f"{f} (not in the manifest)" for f in _extra(bag)]
        why = "; ".join(problems[:5]) if problems else _first(exc)
        raise IntegrityError(f"bag {bag} does not verify: {why}") from None
    fetched = {name: _fetched(url) for name, url in holes.items()
               if not (bag / name).is_file()}
    return bag / "data", fetched


def _check_holey(bag: Path, holes: dict[str, str]) -> None:
    """Validate a bag whose ``fetch.txt`` lists files kept elsewhere: every file checked
    against the manifests, in the bag or where ``fetch.txt`` says it is."""
    problems = _changed(bag, "tagmanifest-sha256.txt") or _changed(
        bag, "manifest-sha256.txt", holes) or [f"{f} (not in the manifest)" for f in _extra(bag)]
    if problems:
        raise IntegrityError(f"bag {bag} does not verify: {'; '.join(problems[:5])}")


def _fetched(url: str) -> Path:
    """The local file a ``fetch.txt`` URL names (``file://``); other schemes are fetched
    first by a BagIt tool."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    if parsed.scheme != "file":
        raise DatasetError(f"{url} is to be fetched first: resolve the bag's fetch.txt with a "
                           f"BagIt tool (e.g. bdbag --resolve-fetch all), then import it")
    return Path(unquote(parsed.path))


def _import_records(session: Session, records: dict[str, dict[str, Any]]) -> None:
    """Declare the bag's record types (referenced ones first) and store its records."""
    from flordb.lifecycle.records import Ref, record_type

    done: set[str] = set()

    def declare(name: str) -> None:
        if name in done or name not in records:
            return
        done.add(name)
        attributes = records[name]["attributes"]
        for t in attributes.values():
            if t.startswith("ref:") and t[4:] != name:
                declare(t[4:])
        declared = record_type(session, name, {
            a: Ref(t[4:]) if t.startswith("ref:") else t for a, t in attributes.items()})
        declared.add_many(records[name]["records"])

    for name in sorted(records):
        declare(name)


def _import_labels(session: Session, data: Path) -> None:
    """Define the bag's features and store every value with its annotator, workflow and time."""
    from flordb.lifecycle.features import feature

    by_feature: dict[str, list[dict[str, str]]] = {}
    with (data / "labels.csv").open(newline="") as rows:
        for r in csv.DictReader(rows):
            by_feature.setdefault(r["feature"], []).append(r)
    for spec in json.loads((data / "features.json").read_text()):
        defined = feature(session, spec["name"], spec["record_type"],
                          {c: _TYPES[t] for c, t in spec["columns"].items()}, spec["vocabulary"])
        defined.import_values([
            (r["record_id"], json.loads(r["value"]), r["annotator"], r["workflow"],
             float(r["created"]) if r.get("created") else None)
            for r in by_feature.get(defined.name, [])])


_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


def _changed(bag: Path, manifest_name: str, holes: dict[str, str] | None = None
             ) -> list[str]:
    """The files of ``manifest_name`` whose sha256 differs from it, or that are missing (a
    file in ``holes`` is looked for where its fetch URL says when the bag lacks it)."""
    import hashlib

    manifest = bag / manifest_name
    if not manifest.is_file():
        return []
    out = []
    for line in manifest.read_text().splitlines():
        digest, _, rel = line.partition(" ")
        file = bag / rel.strip()
        if holes and rel.strip() in holes and not file.is_file():
            file = _fetched(holes[rel.strip()])
        if not file.is_file():
            out.append(f"{rel.strip()} (missing)")
        elif hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            out.append(f"{rel.strip()} (changed)")
    return out


def _extra(bag: Path) -> list[str]:
    """Payload files that the bag's manifest does not list."""
    manifest = bag / "manifest-sha256.txt"
    listed = {line.partition(" ")[2].strip() for line in manifest.read_text().splitlines()} \
        if manifest.is_file() else set()
    return sorted(p.relative_to(bag).as_posix() for p in (bag / "data").rglob("*")
                  if p.is_file() and p.relative_to(bag).as_posix() not in listed)


def _first(exc: Exception) -> str:
    details = getattr(exc, "details", None)
    return str(details[0]) if details else str(exc)
