"""``flor.dataframe``: logged values pivoted to one row per run and loop context.

Hot series are read straight from their blobs with ``numpy.frombuffer``; other values come
from ``records``. Each name becomes one column keyed by ``(run_id, loop_id, iter, rep)``, where
``rep`` numbers the values a name logged in the same loop iteration, in logging order: every
logged value is a row, and the k-th values of names logged in the same context share a row.
The columns are outer-joined, top-level values logged once are broadcast over their run, and
the loop dimensions are computed per loop instance (one numpy step per instance, not per row).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from flordb import values as _values
from flordb.errors import BadTypeError, WhereError
from flordb.store.db import Connection, connect_reader

#: A value's place: its run, loop context and iteration, and ``rep``: how many values of the
#: same name that context logged before it (a name logged k times in one iteration: k rows).
KEY = ["run_id", "loop_id", "iter", "rep"]
#: Recorded and back-filled values; re-executed ('recheck') and unfinished ones are not shown.
SHOWN = "source IN ('record', 'replay')"
IDENTITY = ["projid", "tstamp", "filename"]


class Readable(Protocol):
    """An open store (:class:`flordb.store.handle.Store`): its connection is used."""

    conn: Connection


Source = Path | Readable


@contextmanager
def _reading(source: Source) -> Iterator[Connection]:
    """The connection of an open store, or a reader of the store at a project root."""
    if isinstance(source, (str, os.PathLike)):
        conn = connect_reader(Path(source))
        try:
            yield conn
        finally:
            conn.close()
    else:
        yield source.conn


def dataframe(root: Source, names: Sequence[str], run_ids: bool = False,
              runs_only: Sequence[int] | None = None) -> pd.DataFrame:
    """The frame described in :func:`flordb.dataframe`, read from the store at ``root`` (a
    project root or an open store);
    with ``run_ids``, each row's local ``run_id`` first (for flordb's own readers: the API's
    frame keeps FlorDB's columns); with ``runs_only``, only those runs are read.

    A logged name equal to one of the frame's own columns (``projid``, ``tstamp``,
    ``filename``, a loop's ``<loop>`` or ``<loop>_value``) keeps its values under
    ``<name>_logged`` (:func:`value_columns`); the frame's own columns keep their names.
    """
    for name in names:
        if not isinstance(name, str):
            raise BadTypeError(f"dataframe names must be str, not {type(name).__name__}")
    with _reading(root) as conn:
        chosen = "" if runs_only is None else \
            f" AND run_id IN ({','.join(str(int(r)) for r in runs_only) or 'NULL'})"
        runs = pd.read_sql_query(
            f"SELECT run_id, projid, tstamp, filename FROM runs WHERE 1{chosen}"
            " ORDER BY run_id", conn)
        per_run = not names
        if per_run:
            names = [r[0] for r in conn.execute(
                f"SELECT name FROM (SELECT name, MIN(seq) AS s FROM records WHERE loop_id = 0"
                f" AND {SHOWN} GROUP BY name UNION ALL SELECT name, MIN(seq) FROM series"
                f" WHERE loop_id = 0 AND {SHOWN} GROUP BY name) GROUP BY name"
                f" ORDER BY MIN(s), name")]
        names = list(dict.fromkeys(names))
        # Values are held under labels of their own while the frame is built: a logged name
        # may be any string, the frame's key columns ("run_id", "iter") included.
        labels = [f"\0{i}" for i in range(len(names))]
        wide = _columns(conn, names, labels, top_only=per_run, chosen=chosen)
        if per_run:
            wide = wide[wide["rep"] == wide.groupby("run_id")["rep"].transform("max")] \
                if len(wide) else wide  # one row per run: a value logged again is its last
            wide = runs[["run_id"]].merge(wide, on="run_id", how="left")
            wide["loop_id"], wide["iter"], wide["rep"] = 0, 0, 0
        else:
            wide = _broadcast(wide, labels)
        loops, elements = _loop_tables(conn, wide)
    dims = _dimensions(wide, loops, elements)
    values = wide[labels].reset_index(drop=True)
    own = ["run_id", *IDENTITY] if run_ids else IDENTITY
    values.columns = value_columns(names, [*own, *dims.columns])
    out = pd.concat([_identity(wide, runs), dims, values], axis=1)
    for col in out.columns[3:]:
        out[col] = _classic(out[col], value=col not in dims.columns)
    if run_ids:
        out.insert(0, "run_id", wide["run_id"].to_numpy())
    # Runs in order, then loop iterations outermost first; rows outside a loop sort after it.
    keys = [dims[c].to_numpy(dtype="float64", na_value=np.inf) for c in dims.columns[::2]]
    order = np.lexsort([wide["rep"].to_numpy(), *reversed(keys), wide["run_id"].to_numpy()])
    return out.iloc[order].reset_index(drop=True)


#: Added to a logged name that equals one of the frame's own columns.
CLASH_SUFFIX = "_logged"


def value_columns(names: Sequence[str], taken: Sequence[str]) -> list[str]:
    """The frame's column of each logged name: the name itself, or, when the frame already
    has a column of that name (``tstamp``, a loop's ``epoch``), the name with
    :data:`CLASH_SUFFIX` (added again until it is free)."""
    used = set(taken)
    out = []
    for name in names:
        column = name
        while column in used:
            column += CLASH_SUFFIX
        used.add(column)
        out.append(column)
    return out


def _columns(conn: Any, names: list[str], labels: list[str], top_only: bool,
             chosen: str = "") -> pd.DataFrame:
    """One column per name (labelled by ``labels``), outer-joined on :data:`KEY`; ``chosen``
    restricts the runs read (an ``AND run_id IN (...)`` of integers)."""
    where_top = (" AND loop_id = 0" if top_only else "") + chosen
    marks = ",".join("?" * len(names))
    numeric: dict[str, list[tuple]] = defaultdict(list)
    for row in conn.execute(
            f"SELECT name, run_id, loop_id, seq, dtype, iters, vals FROM series"
            f" WHERE name IN ({marks}){where_top} AND {SHOWN} ORDER BY run_id, loop_id, seq",
            names):
        numeric[row[0]].append(row[1:])
    other: dict[str, list[tuple]] = defaultdict(list)
    # A parameter has one value per run: of an arg recorded twice (a notebook's carried-over
    # value, then the cell's own), the later one.
    for name, run, loop_id, it, seq, value, vtype, text in conn.execute(
            f"SELECT name, run_id, loop_id, iter, seq, value, vtype, repr FROM records AS r"
            f" WHERE name IN ({marks}){where_top} AND {SHOWN} AND NOT (kind = 'arg' AND"
            f" EXISTS (SELECT 1 FROM records AS later WHERE later.run_id = r.run_id AND"
            f" later.name = r.name AND later.kind = 'arg' AND later.seq > r.seq))"
            f" ORDER BY seq", names):
        other[name].append((run, loop_id, it, seq, _values.decode(value, vtype, text)))
    frames = [_column(label, numeric.get(name, []), other.get(name, []))
              for name, label in zip(names, labels)]
    if len(frames) == 1:
        return frames[0].reset_index()
    return pd.concat(frames, axis=1, join="outer", sort=False).reset_index()


def _column(name: str, chunks: list[tuple], rows: list[tuple]) -> pd.DataFrame:
    """The values of one name indexed by ``KEY``, in the dtype that keeps their types."""
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for run, loop_id, seq, dtype, iters, vals in chunks:
        it = np.frombuffer(iters, dtype="<i8")
        n = len(it)
        parts["run_id"].append(np.full(n, run, dtype=np.int64))
        parts["loop_id"].append(np.full(n, loop_id, dtype=np.int64))
        parts["iter"].append(it)
        parts["seq"].append(np.full(n, seq, dtype=np.int64))
        parts["value"].append(np.frombuffer(vals, dtype="<f8" if dtype == "f8" else "<i8"))
    if rows:
        runs, loop_ids, iters, seqs, values = zip(*rows)
        parts["run_id"].append(np.asarray(runs, dtype=np.int64))
        parts["loop_id"].append(np.asarray(loop_ids, dtype=np.int64))
        parts["iter"].append(np.asarray(iters, dtype=np.int64))
        parts["seq"].append(np.asarray(seqs, dtype=np.int64))
        parts["value"].append(_object_array(values))
    if not parts:
        empty = pd.DataFrame({k: np.array([], dtype=np.int64) for k in KEY})
        return empty.assign(**{name: pd.Series([], dtype=object)}).set_index(KEY)
    cols = {k: np.concatenate(v) for k, v in parts.items() if k != "value"}
    value = _concat_values(parts["value"])
    if isinstance(value, np.ndarray) and value.dtype.kind == "i":
        value = pd.arrays.IntegerArray(value, np.zeros(len(value), dtype=bool))  # holes stay int
    run, loop_id, it = cols["run_id"], cols["loop_id"], cols["iter"]
    if rows or not _is_sorted(run, loop_id, it):
        order = np.lexsort((cols["seq"], it, loop_id, run))
        run, loop_id, it, value = run[order], loop_id[order], it[order], value[order]
    # Keys are now sorted with equal keys in logging order: number each run of equal keys.
    first = np.ones(len(run), dtype=bool)
    first[1:] = (run[1:] != run[:-1]) | (loop_id[1:] != loop_id[:-1]) | (it[1:] != it[:-1])
    if first.all():
        rep = np.zeros(len(run), dtype=np.int64)
    else:
        positions = np.arange(len(run), dtype=np.int64)
        rep = positions - np.maximum.accumulate(np.where(first, positions, 0))
    index = pd.MultiIndex.from_arrays([run, loop_id, it, rep], names=KEY)
    return pd.DataFrame({name: value}, index=index)


def _classic(column: pd.Series, value: bool) -> pd.Series:
    """A nullable column as pandas' classic dtypes, which code written for FlorDB expects
    (``df.shift(1)[c] != df[c]`` must compare a hole as NaN): without holes, ``int64`` or
    ``bool``; an int value column with holes is ``float64`` when that is exact (all within
    2**53), a bool one ``object`` with NaN. Loop columns with holes stay ``Int64``."""
    if not isinstance(column.dtype, (pd.Int64Dtype, pd.BooleanDtype)):
        return column
    holes = column.isna()
    if not holes.any():
        return column.astype(column.dtype.numpy_dtype)
    if not value:
        return column
    if isinstance(column.dtype, pd.Int64Dtype):
        if column.abs().max() <= 2**53:
            return column.astype("float64")
        return column
    return column.astype(object).where(~holes, np.nan)


def _is_sorted(run: np.ndarray, loop_id: np.ndarray, it: np.ndarray) -> bool:
    """Whether ``(run, loop_id, it)`` is lexicographically non-decreasing."""
    if len(run) < 2:
        return True
    dr, dl, di = np.diff(run), np.diff(loop_id), np.diff(it)
    return bool(np.all((dr > 0) | ((dr == 0) & ((dl > 0) | ((dl == 0) & (di >= 0))))))


def _object_array(vals: Sequence[Any]) -> np.ndarray:
    arr = np.empty(len(vals), dtype=object)
    arr[:] = list(vals)
    return arr


def _concat_values(arrays: list[np.ndarray]) -> Any:
    """Concatenate value arrays, keeping one numeric dtype when every value shares it."""
    kinds = {a.dtype.kind for a in arrays}
    if kinds <= {"f", "i"}:
        return np.concatenate(arrays)  # floats and ints together promote to float
    values = np.concatenate([a.astype(object) for a in arrays])
    return pd.array(values, dtype=_object_dtype(values))


def _object_dtype(values: np.ndarray) -> Any:
    types = {type(v) for v in values}
    if types == {bool}:
        return "boolean"
    if types == {int} and all(-(2**63) <= v < 2**63 for v in values):
        return "Int64"
    if types == {float} or (types == {int, float} and all(abs(v) < 2**53 for v in values)):
        return "float64"
    return object


def _broadcast(wide: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Spread each run's top-level values over its loop rows.

    A name is spread only over a run that never logged it inside a loop; the top-level row
    itself stays only if it holds a value that was not spread (or the run has no loop rows).
    """
    is_top = (wide["loop_id"] == 0).to_numpy()
    if not is_top.any() or is_top.all():
        return wide
    top = wide[is_top].set_index("run_id")
    deep = wide[~is_top]
    deep_runs = deep["run_id"]
    keep_top = ~top.index.isin(deep_runs.unique())
    for name in names:
        logged_deep = deep.groupby("run_id")[name].count()
        times = top.groupby(level=0)[name].count()
        once = times[times == 1].index  # a value logged again at the top level stays a row
        spread = top[name].where(top[name].notna() & top.index.isin(once)).dropna()
        spread = spread[~spread.index.isin(logged_deep[logged_deep > 0].index)]
        if len(spread):
            fill = deep_runs.map(spread.dropna())
            deep = deep.assign(**{name: deep[name].where(deep[name].notna(), fill)})
        unspread = top[name].notna() & (top.index.isin(logged_deep[logged_deep > 0].index)
                                         | ~top.index.isin(once))
        keep_top |= unspread.to_numpy()
    return pd.concat([deep, top[keep_top].reset_index()], ignore_index=True)[wide.columns]


def _loop_tables(conn: Any, wide: pd.DataFrame) -> tuple[dict, dict]:
    """Loop instances and non-range element values for the runs in ``wide``."""
    runs = sorted(set(wide.loc[wide["loop_id"] != 0, "run_id"].tolist()))
    loops: dict[tuple[int, int], tuple] = {}
    elements: dict[tuple[int, int], list] = defaultdict(list)
    for start in range(0, len(runs), 500):
        batch = runs[start:start + 500]
        marks = ",".join("?" * len(batch))
        for run, loop_id, parent, parent_iter, name, depth, r0, rstep in conn.execute(
                "SELECT run_id, loop_id, parent_id, parent_iter, name, depth, range_start,"
                f" range_step FROM loops WHERE run_id IN ({marks})", batch):
            loops[(run, loop_id)] = (parent, parent_iter, name, depth, r0, rstep)
        for run, loop_id, vals in conn.execute(
                "SELECT run_id, loop_id, vals FROM loop_values"
                f" WHERE run_id IN ({marks}) ORDER BY run_id, loop_id, first_iter", batch):
            elements[(run, loop_id)].extend(json.loads(vals))
    return loops, elements


def _dimensions(wide: pd.DataFrame, loops: dict, elements: dict) -> pd.DataFrame:
    """``<loop>`` (1-based iteration) and ``<loop>_value`` columns, outermost first.

    Only loops that enclose some returned row get columns.
    """
    n = len(wide)
    it_all = wide["iter"].to_numpy()
    # (positions, [(loop name, 0-based iterations, element values), ...]) per loop instance
    filled: list[tuple[np.ndarray, list[tuple[str, Any, Any]]]] = []
    rank: dict[str, tuple[int, int]] = {}
    for (run, loop_id), pos in wide.groupby(["run_id", "loop_id"], sort=False).indices.items():
        if loop_id == 0 or (run, loop_id) not in loops:
            continue
        it = it_all[pos]
        chain = []
        key: tuple[int, int] | None = (run, loop_id)
        while key is not None:
            parent, parent_iter, name, depth, *_ = loops[key]
            chain.append((name, it, _elements_at(loops[key], elements.get(key), it)))
            rank[name] = (min(depth, rank.get(name, (depth, 0))[0]),
                          rank.get(name, (0, len(rank)))[1])
            key, it = ((run, parent), np.array([parent_iter])) if parent else (None, None)
        filled.append((pos, chain))
    names = sorted(rank, key=rank.__getitem__)
    iters = {name: np.full(n, -1, dtype=np.int64) for name in names}
    kinds: dict[str, set[str]] = {name: set() for name in names}
    for _, chain in filled:
        for name, _, vals in chain:
            kinds[name].add(vals.dtype.kind)
    elems = {name: np.zeros(n, dtype=np.int64 if kinds[name] == {"i"} else
                            np.float64 if kinds[name] <= {"i", "f"} else object)
             for name in names}
    for pos, chain in filled:
        for name, it, vals in chain:
            iters[name][pos] = it + 1
            elems[name][pos] = vals
    cols: dict[str, Any] = {}
    for name in names:
        it, vals = iters[name], elems[name]
        missing = it < 0
        if not missing.any():
            cols[name], cols[f"{name}_value"] = it, vals
        elif vals.dtype.kind == "i":
            cols[name] = pd.arrays.IntegerArray(np.where(missing, 0, it), missing)
            cols[f"{name}_value"] = pd.arrays.IntegerArray(vals, missing)
        else:
            cols[name] = pd.arrays.IntegerArray(np.where(missing, 0, it), missing)
            vals[missing] = np.nan if vals.dtype.kind == "f" else None
            cols[f"{name}_value"] = vals
    return pd.DataFrame(cols, index=pd.RangeIndex(n))


def _elements_at(loop: tuple, listed: list | None, it: np.ndarray) -> np.ndarray:
    """Element values of one loop instance at 0-based iterations ``it``."""
    r0, rstep = loop[4], loop[5]
    if r0 is not None:
        return r0 + rstep * it
    listed = listed or []
    vals = np.empty(len(listed) + 1, dtype=object)  # the extra None: iterations not flushed
    vals[:-1] = listed
    picked = vals[np.minimum(it, len(listed))]
    types = {type(v) for v in picked}
    try:
        if types == {int} or types == {float}:
            return picked.astype(np.int64 if types == {int} else np.float64)
    except OverflowError:
        pass  # ints beyond int64 stay Python ints
    return picked


def _identity(wide: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    ident = runs.set_index("run_id")[IDENTITY]
    return ident.reindex(wide["run_id"].to_numpy()).reset_index(drop=True)


#: How a run's values of a name are summarized in one column of the runs table.
SUMMARIES = ("last", "max", "min")


def runs_where(root: Source, where: str | None,
               metrics: Sequence[tuple[str, str]] = ()) -> pd.DataFrame:
    """One row per run (``run_id``, identity, top-level values, and a column
    ``<name> <summary>`` per ``(name, summary)`` of ``metrics``: the run's last, largest or
    smallest numeric value of the name), filtered by ``where`` (:mod:`flordb.store.where`:
    ``"lr > 0.01 and `acc max` >= 0.9"``) when given."""
    # A value logged as run_id keeps its values as run_id_logged: the view's key is run_id.
    base = dataframe(root, [], run_ids=True)
    frame = base[[*base.columns[1:], "run_id"]]  # the key last, as this view has always had it
    for name in dict.fromkeys(n for n, _ in metrics):
        values = dataframe(root, [name], run_ids=True)
        logged = values.columns[-1]  # the value column (renamed when it clashes)
        numbers = pd.to_numeric(values[logged], errors="coerce") if len(values.columns) > 4 \
            else pd.Series([], dtype=float)
        per_run = pd.DataFrame({"run_id": values["run_id"], "v": numbers}).dropna(
            subset=["v"]).groupby("run_id", sort=False)["v"]
        for summary in dict.fromkeys(s for n, s in metrics if n == name):
            if summary not in SUMMARIES:
                raise WhereError(f"a metric column is last, max or min of a name, not "
                                 f"{summary!r}")
            frame[f"{name} {summary}"] = frame["run_id"].map(getattr(per_run, summary)())
    if not where:
        return frame
    from flordb.store.where import select

    return select(frame, where)


def arguments(root: Source) -> pd.DataFrame:
    """One row per run: ``tstamp`` and its ``flor.arg`` values, one column each."""
    from flordb.store.executions import recorded_args

    with _reading(root) as conn:
        args = recorded_args(conn)
        runs = conn.execute("SELECT run_id, tstamp FROM runs ORDER BY run_id").fetchall()
    names = dict.fromkeys(n for a in args.values() for n in a)
    return pd.DataFrame([{"tstamp": t, **args.get(r, {})} for r, t in runs],
                        columns=["tstamp", *names])
