"""Features and labels: typed values on record ids, each from one run and annotator.

    diagnosis = flor.feature("diagnosis", record_type="image",
                             columns={"label": str, "confidence": float},
                             vocabulary={"label": {"benign": ["normal"], "malignant": []}})
    diagnosis.add("img/001.png", label="normal", confidence=0.9)     # stored as "benign"
    diagnosis.add("img/001.png", label="malignant", annotator="dr_lee", workflow="review")
    diagnosis.select("newest")             # one row per record
    diagnosis.select("majority")           # the most frequent label per record
    diagnosis.select(annotator="dr_lee")

A value carries the run that produced it (a model run, or a human annotation session such as
a web app's save followed by ``flor.commit()``), its annotator, its workflow and when. A run
holds at most one value per record of a feature: adding again replaces it.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from flordb.errors import FeatureError, NotAProjectError
from flordb.store import lifecycle as sql

if TYPE_CHECKING:
    import pandas

    from flordb.lifecycle.session import Session

#: Column types a feature may declare, by the name stored.
TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
#: When a read is made as of: a dataset version (its release), a run id (when that run read
#: the feature), or a time (a datetime or an ISO string).
AsOf = Any

#: How one value per record is chosen.
Selector = Literal["newest", "majority"]
SELECTORS: tuple[Selector, ...] = get_args(Selector)


def feature(session: Session, name: str, record_type: str = "file",
            columns: dict[str, type] | None = None,
            vocabulary: dict[str, dict[str, list[str]]] | None = None) -> Feature:
    """The feature ``name``, defined on first use; later calls must agree with the definition.

    ``columns`` maps each value column to ``str``, ``int``, ``float`` or ``bool`` (default: one
    ``value`` column of type ``str``). ``vocabulary`` maps a ``str`` column to its terms, each
    with its synonyms: values are stored as the term and anything else is rejected.
    """
    cols = {c: _type_name(c, t) for c, t in (columns or {"value": str}).items()}
    vocab = {c: {term: list(syn) for term, syn in terms.items()}
             for c, terms in (vocabulary or {}).items()}
    for c in vocab:
        if cols.get(c) != "str":
            raise FeatureError(f"vocabulary for {c!r}: only str columns take a vocabulary")
    row = _lookup(session, name)
    if row is None:
        with session.writing() as (conn, _):
            feature_id = sql.create_feature(conn, name, record_type, cols, vocab)
        return Feature(session, feature_id, name, record_type, cols, vocab)
    stored = get_feature(session, name)
    if columns is not None and (stored.columns, stored.record_type) != (cols, record_type):
        raise FeatureError(f"feature {name!r} is defined on {stored.record_type!r} with "
                           f"columns {stored.columns}, not {record_type!r} with {cols}")
    if vocabulary is not None and stored.vocabulary != vocab:
        _check_growth(name, stored.vocabulary, vocab)
        with session.writing() as (conn, _):
            sql.set_vocabulary(conn, stored.feature_id, vocab)
        return Feature(session, stored.feature_id, name, stored.record_type, stored.columns,
                       vocab)
    return stored


def _check_growth(name: str, old: dict[str, dict[str, list[str]]],
                  new: dict[str, dict[str, list[str]]]) -> None:
    """A vocabulary may grow (new terms, new synonyms); what stored values may hold (a term,
    a synonym, the meaning of either) may not go."""
    for column, terms in old.items():
        grown = new.get(column, {})
        for term, synonyms in terms.items():
            if term not in grown:
                raise FeatureError(f"feature {name!r} column {column!r}: the vocabulary may "
                                   f"grow, but term {term!r} is missing from the new one")
            gone = sorted(set(synonyms) - set(grown[term]))
            if gone:
                raise FeatureError(f"feature {name!r} column {column!r}: synonyms {gone} of "
                                   f"{term!r} are missing from the new vocabulary")
        owners: dict[str, str] = {}
        for term, synonyms in grown.items():
            for word in (term, *synonyms):
                if word in owners and owners[word] != term:
                    raise FeatureError(f"feature {name!r} column {column!r}: {word!r} would "
                                       f"mean both {owners[word]!r} and {term!r}")
                owners[word] = term


@dataclass(frozen=True)
class Feature:
    """A defined feature; see the module docstring."""

    session: Session = field(repr=False, compare=False)
    feature_id: int
    name: str
    record_type: str
    columns: dict[str, str]
    vocabulary: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def add(self, record_id: str, annotator: str | None = None, workflow: str | None = None,
            **values: Any) -> None:
        """Store the current run's value for ``record_id`` (replacing its earlier one).

        ``annotator`` (who or what produced it) and ``workflow`` default to the script name.
        """
        self.add_many([{"record_id": record_id, **values}], annotator, workflow)

    def add_many(self, rows: list[dict[str, Any]] | pandas.DataFrame,
                 annotator: str | None = None, workflow: str | None = None) -> int:
        """Store many values (dicts or a frame with ``record_id`` and the value columns)."""
        if hasattr(rows, "to_dict"):
            rows = rows.to_dict("records")
        checked = [(str(r["record_id"]), json.dumps(self._check(
            {k: v for k, v in r.items() if k != "record_id"}))) for r in rows]
        with self.session.writing() as (conn, run_id):
            who = _script(self.session)
            sql.put_values(conn, self.feature_id, run_id, checked, annotator or who,
                           workflow or who)
        return len(checked)

    def import_values(self, rows: list[tuple[str, dict[str, Any], str, str, float | None]]
                      ) -> int:
        """Store values made elsewhere (an imported bag): ``(record_id, values, annotator,
        workflow, created)``, each keeping who made it and when (``None``: now)."""
        import time

        now = time.time()
        checked = [(str(rid), json.dumps(self._check(values)), who, workflow, created or now)
                   for rid, values, who, workflow, created in rows]
        with self.session.writing() as (conn, run_id):
            sql.import_values(conn, self.feature_id, run_id, checked)
        return len(checked)

    def _check(self, values: dict[str, Any]) -> dict[str, Any]:
        extra = set(values) - set(self.columns)
        missing = set(self.columns) - set(values)
        if extra or missing:
            raise FeatureError(f"feature {self.name!r} takes columns {sorted(self.columns)}"
                               + (f"; unknown: {sorted(extra)}" if extra else "")
                               + (f"; missing: {sorted(missing)}" if missing else ""))
        out = {}
        for col, value in values.items():
            out[col] = _cast(self.name, col, self.columns[col], value)
            terms = self.vocabulary.get(col)
            if terms is not None and value is not None:
                out[col] = _term(self.name, col, terms, out[col])
        return out

    def values(self, as_of: AsOf = None) -> pandas.DataFrame:
        """Every value: ``record_id``, the columns, ``annotator, workflow, run_id, tstamp,
        created``, oldest first. With ``as_of`` (a dataset version, a run id or a time), only
        the values stored by then: for a run, by the time it read this feature."""
        import pandas as pd

        with self.session.reading() as conn:
            rows = sql.feature_values(conn, self.feature_id, self._when(conn, as_of))
        cols = list(self.columns)
        frame = pd.DataFrame(
            [(rid, *[json.loads(val)[c] for c in cols], *rest) for rid, val, *rest in rows],
            columns=["record_id", *cols, "annotator", "workflow", "run_id", "tstamp",
                     "created"])
        return frame

    def _when(self, conn: Any, as_of: AsOf) -> float | None:
        """``as_of`` as epoch seconds."""
        import datetime as _dt

        import pandas as pd

        if as_of is None:
            return None
        if hasattr(as_of, "version_id") and hasattr(as_of, "content_hash"):  # a version
            return float(sql.released_at(conn, as_of.version_id))
        if isinstance(as_of, float):
            return as_of  # epoch seconds
        if isinstance(as_of, numbers.Integral) and not isinstance(as_of, bool):
            when = sql.read_at(conn, int(as_of), self.name)
            if when is None:
                raise FeatureError(f"as_of={as_of}: no run {as_of}")
            return float(when)
        if isinstance(as_of, (str, _dt.datetime)):
            stamp = pd.Timestamp(as_of)
            if stamp.tzinfo is None:
                stamp = stamp.tz_localize(_dt.datetime.now().astimezone().tzinfo)
            return float(stamp.timestamp())
        raise FeatureError(f"as_of takes a dataset version, a run id, a time or epoch seconds, not "
                           f"{type(as_of).__name__}")

    def select(self, how: Selector = "newest", annotator: str | None = None,
               workflow: str | None = None, column: str | None = None,
               as_of: AsOf = None) -> pandas.DataFrame:
        """One value per record: the ``newest``, or the ``majority`` vote on ``column`` (default
        the first; ties go to the newest), among the values of ``annotator``/``workflow`` when
        given, and stored by ``as_of`` (see :meth:`values`). Majority rows say how many
        ``votes`` the value got out of ``voters``."""
        if how not in SELECTORS:
            raise FeatureError(f"select how={how!r}: choose one of {', '.join(SELECTORS)}")
        frame = self.values(as_of)
        if annotator is not None:
            frame = frame[frame["annotator"] == annotator]
        if workflow is not None:
            frame = frame[frame["workflow"] == workflow]
        if how == "newest" or frame.empty:
            return frame.groupby("record_id", sort=True).tail(1).sort_values("record_id") \
                .reset_index(drop=True)
        column = column or next(iter(self.columns))
        if column not in self.columns:
            raise FeatureError(f"feature {self.name!r} has no column {column!r}")
        # One vote per annotator and record: their newest value (labelling in two sessions
        # does not vote twice).
        frame = frame.groupby(["record_id", "annotator"], sort=False, dropna=False).tail(1)
        counts = frame.groupby(["record_id", column], dropna=False)[column].transform("size")
        frame = frame.assign(votes=counts,
                             voters=frame.groupby("record_id")["record_id"].transform("size"))
        # Most votes first, then newest: the first row of each record is its majority value.
        ordered = frame.sort_values(["record_id", "votes", "created"],
                                    ascending=[True, False, False], kind="stable")
        return ordered.groupby("record_id", sort=True).head(1).reset_index(drop=True)

    def read(self, how: Selector = "newest", **filters: Any) -> pandas.DataFrame:
        """:meth:`select`, recording the selection as an input of the current run with the
        cut-off it used, so that ``as_of=<this run>`` reads it again exactly."""
        with self.session.reading() as conn:
            cutoff = self._when(conn, filters.get("as_of"))
        if cutoff is not None:
            filters["as_of"] = cutoff  # one cut-off for the selection and the record
        chosen = self.select(how, **filters)
        digest = hashlib.sha256(chosen.drop(columns=["created"]).to_csv(index=False).encode())
        self.session.record_io("input", "feature", self.name, digest.hexdigest(),
                               as_of=cutoff)
        return chosen


def get_feature(session: Session, name: str) -> Feature:
    """The feature ``name`` as defined; raises :class:`FeatureError` when it is not."""
    row = _lookup(session, name)
    if row is None:
        raise FeatureError(f"no feature {name!r} is defined (flor.feature(name, columns=...))")
    return Feature(session, row[0], name, row[1], json.loads(row[2]), json.loads(row[3]))


def _lookup(session: Session, name: str) -> tuple | None:
    try:
        with session.reading() as conn:
            return sql.feature_row(conn, name)
    except NotAProjectError:
        return None


def _type_name(column: str, t: type | str) -> str:
    name = t if isinstance(t, str) else getattr(t, "__name__", "")
    if name not in TYPES:
        raise FeatureError(f"column {column!r}: type must be one of str, int, float, bool")
    return name


def _cast(feature: str, column: str, type_name: str, value: Any) -> Any:
    if value is None:
        return None
    t: Any = TYPES[type_name]
    if type(value) is t or (t is float and type(value) is int):
        return t(value)
    if t in (int, float) and hasattr(value, "item") and not isinstance(value, (str, bytes)):
        item = value.item()  # numpy scalars
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            return t(item)
    raise FeatureError(f"feature {feature!r} column {column!r} takes {type_name}, "
                       f"not {type(value).__name__} ({value!r})")


def _term(feature: str, column: str, terms: dict[str, list[str]], value: str) -> str:
    for term, synonyms in terms.items():
        if value == term or value in synonyms:
            return term
    allowed = ", ".join(f"{t} ({', '.join(s)})" if s else t for t, s in terms.items())
    raise FeatureError(f"feature {feature!r} column {column!r}: {value!r} is not in the "
                       f"vocabulary: {allowed}")


def _script(session: Session) -> str:
    from flordb.project import script_name

    return script_name(session.resolve_project())
