"""Registry views: the best checkpoint by a logged metric, feature-store and training-data views.

    best = flor.best("acc")                      # the top row, with its checkpoint
    flor.load_checkpoint(best, model=net)        # restore those weights into ``net``
    flor.feature_store("image")                  # one row per record, a column per feature
    flor.training_data(v1, features=["stats"], label="diagnosis")

A metric logged in iteration *k* of an outermost loop was computed from the state at the end
of that iteration, which is the checkpoint taken at the start of iteration *k + 1*
(:mod:`flordb.checkpoint`); a metric logged outside loops goes with the run's last checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from flordb.errors import RegistryError
from flordb.lifecycle.datasets import DatasetVersion
from flordb.lifecycle.features import AsOf, Selector, get_feature
from flordb.store import registry as sql
from flordb.values import is_missing

#: Which end of a metric is best.
Objective = Literal["max", "min"]

if TYPE_CHECKING:
    import pandas

    from flordb.lifecycle.session import Session
    from flordb.store.db import Connection


def best(session: Session, metric: str, mode: Objective = "max", n: int = 1
         ) -> pandas.DataFrame:
    """The ``n`` best values of ``metric`` over all runs (and outermost-loop iterations), with
    ``run_id, loop_id, iter`` and ``checkpoint``: the iteration of the checkpoint that holds the
    state the value was computed from (missing when that checkpoint was not taken)."""
    import pandas as pd

    from flordb.store.handle import Store

    if mode not in ("max", "min"):
        raise RegistryError(f"mode must be 'max' or 'min', not {mode!r}")
    session.flush()
    root = session.project_root()
    with Store.open(root) as store:
        frame = store.frame([metric])
    frame = frame[pd.to_numeric(frame[metric], errors="coerce").notna()] \
        if metric in frame else frame.iloc[0:0]
    if frame.empty:
        raise RegistryError(f"no numeric value of {metric!r} was logged")
    ranked = frame.sort_values(metric, ascending=mode == "min", kind="stable").head(n)
    ranked = ranked[[*ranked.columns[1:], "run_id"]]  # FlorDB's columns first, as before
    with session.reading() as conn:
        loops = [c for c in ranked.columns if c not in ("projid", "tstamp", "filename", metric,
                                                       "run_id") and not c.endswith("_value")]
        outer = loops[0] if loops else None
        extra = [_checkpoint_of(conn, root, row, outer) for _, row in ranked.iterrows()]
    return ranked.assign(loop_id=[e[0] for e in extra], iter=[e[1] for e in extra],
                         checkpoint=pd.array([e[2] for e in extra], dtype="Int64")) \
        .reset_index(drop=True)


def _checkpoint_of(conn: Connection, root: Path, row: pandas.Series,
                   outer: str | None) -> tuple[Any, Any, Any]:
    run = int(row["run_id"])
    main = sql.main_loop(conn, run, outer)
    if main is None:
        return None, None, None
    loop_id, iterations = main
    it: int | None = None
    wanted: int | None = iterations  # a value logged after the loop: the loop's end state
    if outer is not None and not is_missing(row[outer]):
        it = int(row[outer]) - 1
        wanted = it + 1
    from flordb.checkpoint import available

    have = available(conn, run, loop_id, root)
    return loop_id, it, wanted if wanted in have else None


def load_checkpoint(session: Session, row: pandas.Series | pandas.DataFrame,
                    **objects: Any) -> None:
    """Restore ``objects`` (``model=net, optimizer=opt``: the names they were enrolled under)
    and the RNG states from the checkpoint of a row of :func:`best`; the checkpoint becomes an
    input of the current run."""
    from flordb import checkpoint

    if hasattr(row, "iloc") and hasattr(row, "columns"):
        row = row.iloc[0]
    if is_missing(row.get("checkpoint")):
        raise RegistryError(f"no checkpoint holds the state of that row (run {row['run_id']}): "
                            "it was not taken (see flor.set_epsilon) or was deleted")
    with session.reading() as conn:
        ck = checkpoint.load(session.project_root(), conn, int(row["run_id"]),
                             int(row["loop_id"]), int(row["checkpoint"]))
    if ck is None or ck.iteration != int(row["checkpoint"]):
        raise RegistryError(f"the checkpoint of run {row['run_id']} at iteration "
                            f"{row['checkpoint']} cannot be read")
    checkpoint.apply(ck, objects)
    session.record_io("input", "checkpoint", f"{ck.run_id}:{ck.loop_id}:{ck.iteration}", None)


def feature_store(session: Session, record_type: str, how: Selector = "newest"
                  ) -> pandas.DataFrame:
    """One row per record of ``record_type``, one column per value column of each feature on
    that type (``<feature>`` when it has one column, else ``<feature>.<column>``)."""
    import pandas as pd

    with session.reading() as conn:
        names = sql.features_on(conn, record_type)
    frame = pd.DataFrame({"record_id": pd.Series([], dtype=object)})
    for name in names:
        frame = frame.merge(_wide(session, name, how, record=False), on="record_id",
                            how="outer")
    return frame.sort_values("record_id").reset_index(drop=True)


def training_data(session: Session, version: DatasetVersion, features: Sequence[str] = (),
                  label: str | None = None, how: Selector = "newest",
                  as_of: AsOf = None) -> pandas.DataFrame:
    """The members of ``version`` with the selected values of ``features`` and ``label``
    (one row per member, in record order), recorded as inputs of the current run. With
    ``as_of`` (a dataset version, a run id, a time), values stored later are left out:
    ``as_of=<run id of a training>`` reads exactly what that training read."""
    frame = version.read()[["record_id"]]
    for name in [*features, *([label] if label else [])]:
        frame = frame.merge(_wide(session, name, how, record=True, as_of=as_of),
                            on="record_id", how="left")
    return frame.reset_index(drop=True)


def _wide(session: Session, name: str, how: Selector, record: bool,
          as_of: AsOf = None) -> pandas.DataFrame:
    f = get_feature(session, name)
    chosen = f.read(how, as_of=as_of) if record else f.select(how, as_of=as_of)
    cols = list(f.columns)
    # One column: the feature's name; several: a column named as the feature keeps the name
    # (row["grade"]), the others are "<feature>.<column>".
    renamed = {c: name if len(cols) == 1 or c == name else f"{name}.{c}" for c in cols}
    return chosen[["record_id", *cols]].rename(columns=renamed)
