"""Typed records: a record type declares attributes and references to other record types.

    subject = flor.record_type("Subject", {"sex": str, "age": int})
    image = flor.record_type("Image", {"subject": flor.ref("Subject"), "eye": str})
    subject.add("s01", sex="f", age=61)
    image.add("img/s01-left.png", subject="s01", eye="left")   # s01 must be a Subject
    image.records()                                            # one row per record

A dataset whose ``record_type`` names a record type only takes members that are records of
it; ``split(..., group_by="subject")`` may name an attribute. Records and their types live in
the store, each stamped with the run that made it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flordb.errors import DatasetError, NotAProjectError
from flordb.store import lifecycle as sql

if TYPE_CHECKING:
    import pandas

    from flordb.lifecycle.session import Session

#: Attribute types, by the name stored.
TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


@dataclass(frozen=True)
class Ref:
    """An attribute that names a record of another record type."""

    record_type: str


def ref(record_type: str) -> Ref:
    """An attribute type: a reference to a record of ``record_type``."""
    return Ref(record_type)


def record_type(session: Session, name: str, attributes: dict[str, Any] | None = None
                ) -> RecordType:
    """The record type ``name``, declared on first use (later calls must agree)."""
    declared = {a: _declare(name, a, t) for a, t in (attributes or {}).items()}
    found = lookup(session, name)
    if found is not None:
        if attributes is not None and found.attributes != declared:
            raise DatasetError(f"record type {name!r} has attributes {found.attributes}, "
                               f"not {declared}")
        return found
    for a, t in declared.items():
        if t.startswith("ref:") and t[4:] != name and lookup(session, t[4:]) is None:
            raise DatasetError(f"record type {name!r}: attribute {a!r} refers to "
                               f"{t[4:]!r}, which is not a record type")
    with session.writing() as (conn, run_id):
        type_id = sql.create_record_type(conn, name, declared, run_id)
    return RecordType(session, type_id, name, declared)


def lookup(session: Session, name: str) -> RecordType | None:
    """The record type ``name`` if it is declared."""
    try:
        with session.reading() as conn:
            row = sql.record_type_row(conn, name)
    except NotAProjectError:
        return None
    return None if row is None else RecordType(session, row[0], name, json.loads(row[1]))


@dataclass(frozen=True)
class RecordType:
    """A declared record type; see the module docstring."""

    session: Session = field(repr=False, compare=False)
    type_id: int
    name: str
    attributes: dict[str, str]

    def add(self, record_id: str, **attrs: Any) -> None:
        """Store (or replace) record ``record_id`` with its attributes, checked."""
        self.add_many([{"record_id": record_id, **attrs}])

    def add_many(self, rows: list[dict[str, Any]] | pandas.DataFrame) -> int:
        """Store many records (dicts, or a frame with ``record_id`` and the attributes)."""
        if hasattr(rows, "to_dict"):
            rows = rows.to_dict("records")
        checked = [(str(r["record_id"]), self._check({k: v for k, v in r.items()
                                                       if k != "record_id"})) for r in rows]
        refs: dict[str, set[str]] = {}
        for _, attrs in checked:
            for a, t in self.attributes.items():
                if t.startswith("ref:") and attrs.get(a) is not None:
                    refs.setdefault(t[4:], set()).add(str(attrs[a]))
        with self.session.writing() as (conn, run_id):
            for target, ids in refs.items():
                row = sql.record_type_row(conn, target)
                known = set() if row is None else sql.existing_records(conn, row[0], sorted(ids))
                own = {rid for rid, _ in checked} if target == self.name else set()
                missing = sorted(ids - known - own)
                if missing:
                    raise DatasetError(f"{self.name}: no {target} record {missing[0]!r}"
                                       + (f" (and {len(missing) - 1} more)"
                                          if len(missing) > 1 else ""))
            sql.put_records(conn, self.type_id, [(rid, json.dumps(a)) for rid, a in checked],
                            run_id)
        return len(checked)

    def records(self) -> pandas.DataFrame:
        """Every record: ``record_id`` and one column per attribute, by id."""
        import pandas as pd

        with self.session.reading() as conn:
            rows = sql.records_of(conn, self.type_id)
        return pd.DataFrame([{"record_id": rid, **json.loads(attrs)} for rid, attrs in rows],
                            columns=["record_id", *self.attributes])

    def missing(self, record_ids: list[str]) -> list[str]:
        """The ids among ``record_ids`` that are not records of this type."""
        with self.session.reading() as conn:
            known = sql.existing_records(conn, self.type_id, record_ids)
        return [r for r in record_ids if r not in known]

    def _check(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(attrs) - set(self.attributes))
        if unknown:
            raise DatasetError(f"record type {self.name!r} has no attribute(s) {unknown}; "
                               f"it has {sorted(self.attributes)}")
        out: dict[str, Any] = {}
        for a, t in self.attributes.items():
            value = attrs.get(a)
            if value is None:
                out[a] = None
                continue
            wanted: Any = str if t.startswith("ref:") else TYPES[t]
            if hasattr(value, "item") and not isinstance(value, (str, bytes)):
                value = value.item()  # numpy scalars
            if type(value) is not wanted and not (wanted is float and type(value) is int):
                raise DatasetError(f"{self.name}.{a} takes {t}, not {type(value).__name__} "
                                   f"({value!r})")
            out[a] = wanted(value)
        return out


def _declare(type_name: str, attribute: str, t: Any) -> str:
    if isinstance(t, Ref):
        return f"ref:{t.record_type}"
    name = t if isinstance(t, str) else getattr(t, "__name__", "")
    if name not in TYPES:
        raise DatasetError(f"{type_name}.{attribute}: type must be str, int, float, bool or "
                           f"flor.ref(<record type>)")
    return name
