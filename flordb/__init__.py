"""flordb: an embedded hindsight-logging database for machine learning.

    import flordb as flor

    lr = flor.arg("lr", 0.01)
    for epoch in flor.loop("epoch", range(10)):
        for step in flor.loop("step", batches):
            flor.log("loss", loss)
    flor.dataframe("lr", "loss")

Records go to SQLite under ``.flor/`` at the project root; no schema, no server. Importing this
module is cheap: pandas, git and libcst are imported only when a call needs them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from threading import get_ident as _thread
from typing import TYPE_CHECKING, Any, TypeVar

from flordb import kwargs as _kwargs
from flordb import notebook as _notebook
from flordb import utils
from flordb.errors import FlorError, HindsightError, InputError, LifecycleError, StoreError
from flordb.runtime import _MAIN_THREAD
from flordb.runtime import CHUNK as _CHUNK
from flordb.runtime import RUNTIME as _rt
from flordb.runtime import SESSION as _session
from flordb.runtime import current as _current

_rec = _rt.recorder  # reset in place, never replaced: flor.log's fast path holds it

if TYPE_CHECKING:
    import os
    from pathlib import Path

    import pandas
    from matplotlib.figure import Figure

    from flordb.lifecycle.datasets import Dataset
    from flordb.lifecycle.features import Feature, Selector
    from flordb.lifecycle.registry import Objective

__all__ = ["log", "arg", "loop", "iteration", "checkpointing", "set_epsilon", "commit",
           "dataframe", "pivot", "query", "replay", "input", "output", "executions", "dataset",
           "get_dataset", "datasets", "export_bag", "import_bag", "record_type", "ref",
           "feature", "lineage", "derived", "best", "load_checkpoint", "feature_store",
           "training_data", "plot", "utils", "FlorError", "StoreError", "InputError",
           "HindsightError", "LifecycleError"]
__version__ = "0.1.0"

T = TypeVar("T")

# In a notebook, runs end with their cells, and the kernel's argv is not the user's.
_IN_NOTEBOOK = "IPython" in sys.modules and _notebook.attach(_rt)
if not _IN_NOTEBOOK and sys.argv and sys.argv[0] not in ("", "-c") and _kwargs.FLAG in sys.argv:
    # Taken out now, at import, so the script's own argparse never sees them; the run still
    # records the command as typed, the command that reproduces it.
    _rt.argv[:] = sys.argv
    try:
        _rt.kwargs.update(_kwargs.extract(sys.argv))
    except _kwargs.ArgCastError as _exc:
        _kwargs.exit_with(_exc)


def log(name: str, value: T) -> T:
    """Record ``value`` under ``name`` in the current run and loop context; return ``value``.

    Floats and 64-bit ints are appended to in-memory columns and written in batches; every
    other value is stored with its type (see :mod:`flordb.values`).
    """
    rec = _rec if _thread() == _MAIN_THREAD else _current().recorder
    fr = rec.frame
    t = type(value)
    if t is float:
        s = fr.floats.get(name)
        if s is not None:
            v = s.vals
            v.append(value)  # type: ignore[arg-type]  # a float: checked above, no cast here
            s.iters.append(fr.i)
            if len(v) >= _CHUNK:
                rec.seal(fr, s)
            return value
    elif t is int:
        s = fr.ints.get(name)
        if s is not None:
            try:
                s.vals.append(value)  # type: ignore[arg-type]  # an int: checked above
            except OverflowError:
                return _current().log_slow(name, value)
            s.iters.append(fr.i)
            if len(s.vals) >= _CHUNK:
                rec.seal(fr, s)
            return value
    return _current().log_slow(name, value)


def arg(name: str, default: Any = None) -> Any:
    """A run parameter: the replayed run's value, else ``--kwargs name=value``, else ``default``.

    The command-line value is cast to the type of ``default`` (bool, int, float, str; with
    ``None``, the text as given, as FlorDB returns it); a value that cannot be cast raises
    :class:`flordb.kwargs.ArgCastError`. The value is recorded as a top-level parameter.

    A ``--kwargs`` value that cannot be cast is bad input on the command line: as argparse
    does, one line (``train.py: error: --kwargs epochs='ten': cannot cast to int ...``) and
    exit status 2; the run is marked failed.
    """
    rt = _current()
    try:
        return rt.arg(name, default)
    except _kwargs.ArgCastError as exc:
        rt.failed = True
        _kwargs.exit_with(exc)


def loop(name: str, iterable: Iterable[T]) -> Iterator[T]:
    """Iterate ``iterable`` unchanged while tracking the loop context ``name``.

    Each iteration's index (and element, when it is a scalar) becomes the ``<name>`` and
    ``<name>_value`` columns of :func:`dataframe`. Outermost loop boundaries are where buffered
    values are flushed. ``break``, exceptions and nesting keep the context right.
    """
    return _current().loop(name, iterable)


@contextmanager
def iteration(name: str, idx: Any, value: Any) -> Iterator[None]:
    """One iteration of a loop context ``name`` whose element is ``str(value)``, as a block:
    what the block logs carries that context, exactly like one pass of :func:`loop` (so
    checkpoints of enrolled objects are taken at its end). For FlorDB scripts' request
    handlers: ``with flor.iteration("document", None, name): ...``. ``idx`` is accepted for
    compatibility; the ``<name>`` column counts the context's passes, as with :func:`loop`.
    """
    passes = _current().loop(name, [str(value)])
    entered = next(passes, _SKIPPED) is not _SKIPPED
    try:
        yield
    except BaseException:
        passes.close()
        raise
    if entered:
        for _ in passes:
            pass


_SKIPPED = object()


@contextmanager
def checkpointing(**objects: Any) -> Iterator[None]:
    """Enroll ``objects`` (torch modules/optimizers, arrays, frames, picklables) for checkpoints.

    While the block is active, checkpoints of these objects and of the RNG states are taken at
    outermost-loop iteration boundaries, as often as the overhead budget allows (see
    :func:`set_epsilon`). Objects are restored in place by replay, so enroll mutable objects.
    """
    rt = _current()
    rt.enroll(objects)
    try:
        yield
    finally:
        rt.checkpoints.unenroll(objects)


def set_epsilon(epsilon: float) -> None:
    """Bound checkpoint cost to ``epsilon`` of compute time (default 1/15; ``$FLORDB_EPSILON``)."""
    if not 0 < epsilon:
        from flordb.errors import BadValueError

        raise BadValueError(f"epsilon must be positive, got {epsilon!r}")
    _current().checkpoints.set_epsilon(float(epsilon))


def commit() -> None:
    """End the current run durably now; later calls record into a new run.

    Runs end by themselves at exit (``failed`` after an uncaught exception); call this in
    long-lived processes (a web app's save action) to mark each unit of work.
    """
    _current().commit()


def dataframe(*names: str) -> pandas.DataFrame:
    """Logged values as a DataFrame: one row per run and loop context where a name was logged.

    Columns: ``projid, tstamp`` (a pandas datetime), ``filename``, then ``<loop>,
    <loop>_value`` per loop (outermost first; ``<loop>`` counts iterations from 1), then
    ``names`` in order. Top-level values (``flor.arg`` and logs outside loops) fill every row
    of their run. With no names: one row per run with its top-level values.

    A logged name equal to one of the frame's own columns (``tstamp``, ``projid``,
    ``filename``, a loop's ``<loop>`` or ``<loop>_value``) comes back as ``<name>_logged``;
    the frame's own columns keep their names.
    """
    import pandas as pd

    from flordb.store.handle import Store

    rt = _current()
    rt.flush()
    with Store.open(rt.project_root()) as store:
        frame = store.frame(names, run_ids=False)  # FlorDB's layout, formatted here
    frame["tstamp"] = pd.to_datetime(frame["tstamp"])
    return frame


def pivot(*names: str) -> pandas.DataFrame:
    """FlorDB's older name for :func:`dataframe` (used in its tutorial's notebooks): the same
    frame, one row per logged value with the loop columns."""
    return dataframe(*names)


def query(sql: str, params: Iterable[Any] = ()) -> pandas.DataFrame | None:
    """Run read-only ``sql`` over the store: a DataFrame (``tstamp`` as datetimes), or
    ``None`` when no row matches (as FlorDB returns).

    Tables: ``runs``, ``loops``, ``loop_values``, ``records``, ``series``; the view ``logs``
    has every logged value, one row each. FlorDB's layout works too (``logs.value_name``,
    ``loops.ctx_id``, ...). See ``docs/store.md``.
    """
    from flordb.store import sql as _sql

    rt = _current()
    rt.flush()
    frame = _sql.query(rt.project_root(), sql, tuple(params))
    return None if frame.empty else frame


def replay(names: str | Iterable[str], where: str | None = None, workers: int | None = None,
           dry_run: bool = False, progress: bool = True, verify: str = "args") -> Any:
    """Back-fill ``names`` into every past run that lacks them (hindsight logging).

    The ``flor.log`` statements of ``names`` in today's scripts are carried into the version of
    each past run, and those versions are re-executed (from checkpoints, skipping what the new
    statements do not need, on ``workers`` processes; default: all cores). ``where`` filters
    the runs by their top-level values (``"lr > 0.01 and epochs >= 5"``). Returns the
    :class:`~flordb.hindsight.replay.Report` (with ``dry_run``, only the plan). Afterwards
    :func:`dataframe` shows the new values in the rows of the recorded ones.

    Every unit that executes iterations checks its live state against the checkpoints the
    run recorded; ``verify`` says which runs also get a cross-check of restored against
    executed state (``"args"``: one per version and distinct args; ``"version"``, ``"run"``,
    ``"none"``). Values that cannot be checked to follow the recording are not written.
    """
    from flordb.hindsight.replay import replay as _replay

    rt = _current()
    rt.flush()
    names = [names] if isinstance(names, str) else list(names)
    return _replay(rt.project_root(), names, where, workers, dry_run, progress=progress,
                   verify=verify)  # type: ignore[arg-type]


def plot(name: str, x: str | None = None, by: Iterable[str] | None = None,
         where: str | None = None, runs: Iterable[str] | None = None) -> Figure:
    """A matplotlib figure of ``name``: one line per run over the loop ``x`` (default the
    innermost; inner loops are numbered across outer ones), runs labelled by the args that
    differ (or by ``by``), restricted by ``where`` (top-level values, as in
    :func:`replay`) or to the runs with tstamps ``runs``. See :mod:`flordb.charts`."""
    from flordb import charts
    from flordb.store.handle import Store

    rt = _current()
    rt.flush()
    with Store.open(rt.project_root()) as store:
        frame = store.frame([name], run_ids=False)
        keep = set(store.runs_table(where)["tstamp"]) if where else None
        args = store.arguments()
    if runs is not None:
        keep = set(runs) if keep is None else keep & set(runs)
    if keep is not None:
        frame = frame[frame["tstamp"].isin(keep)]
    return charts.plot(frame, args, name, x, list(by) if by else None)


# --------------------------------------------------------------------- lifecycle records
def input(path: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """Record the file at ``path`` (its sha256) as an input of the current run; return ``path``."""
    _current().session.file_io("input", path)
    return path


def output(path: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """Declare ``path`` an output of the current run (hashed when the run ends); return it."""
    _current().session.file_io("output", path)
    return path


def executions() -> pandas.DataFrame:
    """Every run as an execution: status, times, duration, argv, ``flor.arg`` values, code
    snapshot, environment summary, and counts of inputs, outputs and checkpoints."""
    from flordb.store.executions import executions as _executions

    with _current().session.reading() as conn:
        return _executions(conn)


def dataset(name: str, record_type: str = "file", description: str = "") -> Dataset:
    """The versioned dataset ``name`` (created if new); see :mod:`flordb.lifecycle.datasets`."""
    from flordb.lifecycle.datasets import dataset as _dataset

    return _dataset(_session, name, record_type, description)


def get_dataset(name: str) -> Dataset:
    """The existing dataset ``name``; never creates one (a typo raises ``DatasetError``) and
    records no run."""
    from flordb.lifecycle.datasets import get_dataset as _get_dataset

    return _get_dataset(_session, name)


def record_type(name: str, attributes: dict[str, Any] | None = None) -> Any:
    """The record type ``name`` with typed ``attributes`` (``str``, ``int``, ``float``,
    ``bool`` or ``flor.ref("<record type>")``); see :mod:`flordb.lifecycle.records`."""
    from flordb.lifecycle.records import record_type as _record_type

    return _record_type(_session, name, attributes)


def ref(record_type: str) -> Any:
    """An attribute type for :func:`record_type`: a reference to a record of another type."""
    from flordb.lifecycle.records import ref as _ref

    return _ref(record_type)


def export_bag(version: Any, dest: str | os.PathLike[str], fetch: str | None = None) -> Path:
    """A released dataset version as a BagIt bag in the new directory ``dest``: the files its
    members name (any record type), its manifest, the members' typed records and what they
    reference, every annotator's labels as of the release, and provenance, citable by its
    content hash. With ``fetch`` (a base URL such as ``file:///shared/lab``), member files are
    listed in ``fetch.txt`` instead of copied, still hashed in the manifest."""
    from flordb.lifecycle.bags import export

    return export(_session, version, dest, fetch)


def import_bag(path: str | os.PathLike[str]) -> Any:
    """Verify the dataset bag at ``path`` (made by :func:`export_bag`), copy its files into
    this project, recreate its typed records and every annotator's labels (with their times),
    and release its version here under its original release time; a tampered bag raises
    ``IntegrityError`` naming the file. Importing the same bag again changes nothing.
    """
    from flordb.lifecycle.bags import import_bag as _import_bag

    return _import_bag(_session, path)


def datasets() -> pandas.DataFrame:
    """Every dataset: record type, working-set size, released versions, split origin."""
    from flordb.lifecycle.datasets import datasets as _datasets

    return _datasets(_session)


def feature(name: str, record_type: str = "file", columns: dict[str, type] | None = None,
            vocabulary: dict[str, dict[str, list[str]]] | None = None) -> Feature:
    """The feature (or label) ``name`` on records of ``record_type``; see
    :mod:`flordb.lifecycle.features`."""
    from flordb.lifecycle.features import feature as _feature

    return _feature(_session, name, record_type, columns, vocabulary)


def lineage(target: Any) -> pandas.DataFrame:
    """What produced ``target`` (a file, ``name@label``, a run id, a row of :func:`best`)."""
    from flordb.lifecycle.lineage import lineage as _lineage

    return _lineage(_session, target)


def derived(target: Any) -> pandas.DataFrame:
    """Everything produced from ``target`` (e.g. a dataset version found to be poisoned)."""
    from flordb.lifecycle.lineage import derived as _derived

    return _derived(_session, target)


def best(metric: str, mode: Objective = "max", n: int = 1) -> pandas.DataFrame:
    """The best ``n`` values of a logged metric, each with the checkpoint it was computed from."""
    from flordb.lifecycle.registry import best as _best

    return _best(_session, metric, mode, n)


def load_checkpoint(row: Any, **objects: Any) -> None:
    """Restore ``objects`` (by their enrolled names) from the checkpoint of a :func:`best` row."""
    from flordb.lifecycle.registry import load_checkpoint as _load

    _load(_session, row, **objects)


def feature_store(record_type: str, how: Selector = "newest") -> pandas.DataFrame:
    """One row per record of ``record_type`` with the selected value of every feature on it."""
    from flordb.lifecycle.registry import feature_store as _feature_store

    return _feature_store(_session, record_type, how)


def training_data(version: Any, features: Iterable[str] = (), label: str | None = None,
                  how: Selector = "newest", as_of: Any = None) -> pandas.DataFrame:
    """Members of a dataset version joined with feature and label values (recorded as
    inputs); ``as_of`` (a version, a run id, a time) leaves out values stored later."""
    from flordb.lifecycle.registry import training_data as _training_data

    return _training_data(_session, version, list(features), label, how, as_of)


# --------------------------------------------------------------------- FlorDB's constants
def __getattr__(name: str) -> Any:
    """``flor.HOMEDIR`` (``~/.flor``, created on first use; ``$FLORDB_HOME`` overrides it),
    ``flor.PROJID`` (the project's name), ``flor.CURRDIR`` (its root) and ``flor.SCRIPTNAME``
    (the running script's file name), as scripts written for FlorDB read them."""
    if name == "HOMEDIR":
        from flordb.project import home_dir

        return str(home_dir())
    if name in ("PROJID", "CURRDIR"):
        project = _rt.resolve_project()
        return project.projid if name == "PROJID" else str(project.root)
    if name == "SCRIPTNAME":
        import os

        return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    raise AttributeError(f"module 'flordb' has no attribute {name!r}")
