"""Adaptive checkpoints at outer-loop boundaries, and restoring them.

At the end of outer iteration ``k`` (``k`` iterations done) a checkpoint is taken only when

    (time spent on checkpoints so far) + M  <=  epsilon * (compute time so far)

where ``M`` is the median of the latest measured costs of a checkpoint on the training thread
(its first value is estimated from the bytes to copy), so one slow write does not suppress the
checkpoints after it, and compute time is the loop's wall time minus the time spent
checkpointing. Cheap state is therefore checkpointed every iteration and expensive state
periodically, with checkpoint cost held under ``epsilon`` of compute (default 1/15; set with
``flor.set_epsilon`` or ``$FLORDB_EPSILON``).

The training thread only *captures* (tensors cloned to CPU, arrays copied, other objects
pickled, RNG states read). A writer thread serializes the capture, stores its objects
durably (:mod:`flordb.store.objects`) and then inserts the checkpoint's rows in one
transaction, so a crash never leaves a checkpoint row whose objects are incomplete. At most one
capture waits for the writer: a checkpoint due while one waits blocks until the writer takes it,
and that wait counts in its cost ``M``, so a slow disk spaces checkpoints out.

A checkpoint recorded for iteration ``i`` of a loop instance holds the state at the *start* of
iteration ``i`` (0-based): after ``i`` iterations completed.
"""

from __future__ import annotations

import math
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flordb import settings
from flordb import state as _state
from flordb.errors import CheckpointWriteError, ReplayUnitError
from flordb.statediff import Difference, differences
from flordb.store import checkpoints, objects
from flordb.store.db import Connection, store_dir
from flordb.store.handle import Store

DEFAULT_EPSILON = float(settings.default("epsilon") or 0)
#: Copy throughput assumed for the first estimate of a checkpoint's cost (bytes per second).
_ASSUMED_COPY_BPS = 5e8
#: Captures at least this large are written by the writer thread; smaller ones are written on
#: the training thread, where serializing them costs less than handing them over
#: (``benchmarks/bench_checkpoint.py`` measures both).
BACKGROUND_MIN_BYTES = 4 << 20
#: Measured checkpoint costs the next estimate is the median of.
_COST_WINDOW = 5


def default_epsilon() -> float:
    """``$FLORDB_EPSILON``, else :data:`DEFAULT_EPSILON`."""
    return settings.read().epsilon


@dataclass
class _Capture:
    run_id: int
    loop_id: int
    iteration: int
    states: dict[str, tuple[str, Any]]  # name -> (kind, captured state)
    capture_s: float
    nbytes: int


@dataclass
class LoopStats:
    """Checkpoint decisions and per-iteration timing for one outer loop instance."""

    loop_id: int
    name: str
    t0: float
    last: float
    initial: float  # the cost estimated from the bytes to copy, before any is measured
    spent: float = 0.0  # checkpointing time on the training thread, one-time costs included
    warm: float = 0.0  # the one-time part of ``spent``
    costs: list[float] = field(default_factory=list)  # the latest measured costs
    count: int = 0
    iterations: int = 0
    mean: float = 0.0
    m2: float = 0.0  # Welford's sum of squared deviations of iteration times

    def observe(self, duration: float) -> None:
        self.iterations += 1
        delta = duration - self.mean
        self.mean += delta / self.iterations
        self.m2 += delta * (duration - self.mean)

    @property
    def estimate(self) -> float:
        """The cost the next checkpoint is expected to have: the median of the latest
        :data:`_COST_WINDOW` measured costs, so one slow write (a disk stall) does not hold
        back the checkpoints after it."""
        if not self.costs:
            return self.initial
        ordered = sorted(self.costs)
        return ordered[len(ordered) // 2]

    def measured(self, cost: float) -> None:
        self.costs.append(cost)
        del self.costs[:-_COST_WINDOW]
        self.spent += cost
        self.count += 1

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.iterations - 1)) if self.iterations > 1 else 0.0


class Checkpointer:
    """Takes checkpoints of enrolled objects under the adaptive rule; one per recording run."""

    def __init__(self, root: Path, epsilon: float,
                 background_min_bytes: int = BACKGROUND_MIN_BYTES,
                 files: FlorFiles | None = None) -> None:
        self.root = root
        self.files = files  # FlorDB-layout files linked to each checkpoint's objects
        self.store = store_dir(root)
        objects.objects_dir(self.store).mkdir(parents=True, exist_ok=True)
        objects.sweep_stale(self.store)
        self.epsilon = epsilon
        self.background_min_bytes = background_min_bytes
        self.loops: dict[int, LoopStats] = {}
        self._queue: queue.Queue[_Capture | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._store: Store | None = Store.open(root, write=True)
        self._conn: Connection | None = self._store.conn
        self._conn_lock = threading.Lock()  # small captures are written on the caller's thread
        self._thread: threading.Thread | None = threading.Thread(
            target=self._writer_loop, name="flordb-checkpoint", daemon=True)
        self._thread.start()

    def boundary(self, run_id: int, loop: Any, done: int,
                 enrolled: dict[str, tuple[Any, str]]) -> bool:
        """Called after outer iteration ``done - 1`` of ``loop`` (a runtime frame).

        Returns whether a checkpoint was taken.
        """
        self._raise_writer_error()
        now = time.perf_counter()
        loop_id = loop.loop_id
        stats = self.loops.get(loop_id)
        if stats is None:
            estimate = sum(_state.estimated_bytes(o, k) for o, k in enrolled.values())
            stats = self.loops[loop_id] = LoopStats(
                loop_id, loop.name, loop.t0, loop.t0, estimate / _ASSUMED_COPY_BPS)
            # One-time costs (numpy creates its global generator on first read) are paid
            # here, counted as overhead but kept out of the estimate of later checkpoints.
            _state.capture_rng()
            warm = stats.warm = time.perf_counter() - now
            stats.spent += warm
            now += warm
        stats.observe(now - stats.last)
        stats.last = now
        compute = now - stats.t0 - stats.spent
        if stats.spent - stats.warm + stats.estimate > self.epsilon * compute:
            return False  # the next checkpoint would take the overhead past epsilon
        cap = self._capture(run_id, loop_id, done, enrolled)
        if cap.nbytes >= self.background_min_bytes:
            self._queue.put(cap)
        else:
            self._write(cap)
        stats.measured(time.perf_counter() - now)
        stats.last = time.perf_counter()  # the next iteration starts after the checkpoint
        return True

    @staticmethod
    def _capture(run_id: int, loop_id: int, iteration: int,
                 enrolled: dict[str, tuple[Any, str]]) -> _Capture:
        t = time.perf_counter()
        objs = {name: obj for name, (obj, _) in enrolled.items()}
        states = {name: (kind, _state.capture(obj, kind, objs)) for name, (obj, kind) in
                  enrolled.items()}
        states[_state.RNG_KEY] = ("rng", _state.capture_rng())
        nbytes = sum(_state.captured_bytes(s) for name, (_, s) in states.items()
                     if name != _state.RNG_KEY)
        return _Capture(run_id, loop_id, iteration, states, time.perf_counter() - t, nbytes)

    def _writer_loop(self) -> None:
        while True:
            cap = self._queue.get()
            try:
                if cap is None:
                    return
                self._write(cap)
            except BaseException as exc:  # re-raised on the training thread
                self._error = exc
            finally:
                self._queue.task_done()

    def _write(self, cap: _Capture) -> None:
        t = time.perf_counter()
        rows: list[checkpoints.Entry] = []
        for name, (kind, captured) in cap.states.items():
            for entry, entry_kind, state in _state.split_entries(name, kind, captured):
                data = _state.serialize(state, entry_kind)
                rows.append(checkpoints.Entry(
                    cap.run_id, cap.loop_id, cap.iteration, entry, entry_kind,
                    objects.put(self.store, data), len(data), cap.capture_s))
        if self.files is not None:
            self.files.link(cap.iteration, [(r.name, r.kind, r.digest) for r in rows])
        write_s = time.perf_counter() - t
        conn = self._conn
        if conn is None:
            raise CheckpointWriteError("checkpoint written after the checkpointer closed")
        with self._conn_lock:
            checkpoints.insert(conn, rows, write_s)

    def finish(self) -> None:
        """Wait for pending writes; raise the first writer error, if any."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._store is not None:
            self._store.close()
            self._store = self._conn = None
        self._raise_writer_error()

    def _raise_writer_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise CheckpointWriteError(f"flordb: writing a checkpoint failed: {error}") from error


class FlorFiles:
    """Checkpoint files where scripts written for FlorDB open them:
    ``HOMEDIR/obj_store/<projid>/<run tstamp to the second>/<name>_<loop>_<value>.<ext>``
    (``.pth`` state dicts, ``.npy`` arrays, ``.pkl`` pickles), hard links to the store's
    objects (symbolic where the file system cannot), so nothing is stored twice.

    ``<value>`` is the outer loop's element at the iteration the checkpoint starts (for a
    ``range``; the iteration number otherwise): the state after iteration ``k - 1`` completed,
    which is what produced the dataframe row whose ``<loop>`` column is ``k``.
    """

    EXT = {"torch": "pth", "numpy": "npy", "pickle": "pkl"}

    def __init__(self, store: Path, home: Path, projid: str, tstamp: str, loop: str,
                 start: int | None, step: int | None) -> None:
        self.store, self.loop, self.start, self.step = store, loop, start, step
        second = tstamp.split(".")[0]  # isoformat(timespec="seconds")
        self.dir = home / "obj_store" / _safe(projid) / second
        self.broken = False

    def link(self, iteration: int, rows: list[tuple[str, str, str]]) -> None:
        """Make the files of the checkpoint at ``iteration`` (``rows``: name, kind, digest).
        They are a convenience: when HOMEDIR cannot be written, one notice, and the checkpoint
        itself is unaffected."""
        if self.broken:
            return
        value = iteration if self.start is None or self.step is None \
            else self.start + self.step * iteration
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            for name, kind, digest in rows:
                if kind not in self.EXT or _state.is_side_entry(name):
                    continue
                path = self.dir / f"{_safe(name)}_{_safe(self.loop)}_{value}.{self.EXT[kind]}"
                source = objects.objects_dir(self.store) / digest[:2] / digest
                if path.exists() or path.is_symlink():
                    path.unlink()
                try:
                    os.link(source, path)
                except OSError:
                    path.symlink_to(source)
        except OSError as exc:
            self.broken = True
            print(f"flordb: checkpoint files are not linked under {self.dir}: {exc}",
                  file=sys.stderr)


def _safe(text: str) -> str:
    """``text`` usable as one path component (FlorDB lets a ``/`` through; flordb does not)."""
    return text.replace("/", "_").replace("\0", "_") or "_"


# --------------------------------------------------------------------- restore (used by replay)
@dataclass
class Checkpoint:
    """A stored checkpoint: the state at the start of ``iteration`` of a loop instance."""

    run_id: int
    loop_id: int
    iteration: int
    states: dict[str, tuple[str, Any]] = field(default_factory=dict)


def available(conn: Connection, run_id: int, loop_id: int,
              root: Path | None = None) -> list[int]:
    """Iterations (ascending) of the loop instance that have a checkpoint.

    With ``root``, only checkpoints whose object files are all present in its store.
    """
    rows = checkpoints.iterations(conn, run_id, loop_id)
    missing = set()
    if root is not None:
        store = store_dir(root)
        missing = {it for it, digest in rows if not objects.exists(store, digest)}
    return sorted({it for it, _ in rows} - missing)


def load(root: Path, conn: Connection, run_id: int, loop_id: int,
         iteration: int) -> Checkpoint | None:
    """The nearest intact checkpoint at or before the start of ``iteration``, or None.

    A checkpoint whose object files are missing or fail their hash is skipped (with a warning)
    in favour of an earlier one: a damaged checkpoint is never restored.
    """
    store = store_dir(root)
    for it in reversed([i for i in available(conn, run_id, loop_id) if i <= iteration]):
        rows = checkpoints.objects_at(conn, run_id, loop_id, it)
        try:
            states = {name: (kind, _state.deserialize(objects.get(store, digest), kind))
                      for name, kind, digest in rows}
        except (OSError, objects.CorruptObjectError) as exc:
            print(f"flordb: skipping damaged checkpoint of run {run_id} at iteration {it}: "
                  f"{exc}", file=sys.stderr)
            continue
        return Checkpoint(run_id, loop_id, it, states)
    return None


def apply(checkpoint: Checkpoint, objects_now: dict[str, Any]) -> None:
    """Restore ``objects_now`` (name -> the live object) and the RNG states in place."""
    missing = set(objects_now) - set(checkpoint.states)
    if missing:
        raise ReplayUnitError(f"the checkpoint at iteration {checkpoint.iteration} has no "
                       f"{', '.join(sorted(missing))}")
    for name, obj in objects_now.items():
        kind, captured = _state.join_entries(checkpoint.states, name)
        _state.restore(obj, captured, kind, objects_now)
    _state.restore_rng(checkpoint.states[_state.RNG_KEY][1])


def compare(checkpoint: Checkpoint, objects_now: dict[str, Any], exact: bool = True,
            rng_since: dict[str, Any] | None = None) -> list[Difference]:
    """Where the live state of ``objects_now`` and the RNGs differs from ``checkpoint``.

    Each live object is captured as the recording captured it and compared entry by entry;
    an entry the recording did not keep (a module's extras in a checkpoint recorded before
    flordb kept them) is not compared. A random generator whose state still equals its state
    in ``rng_since`` (from :func:`flordb.state.capture_rng` where execution began) was not
    drawn from, so its state says nothing about the execution (an unseeded generator the
    script never uses) and is not compared. Paths start with the enrolled name.
    """
    out: list[Difference] = []
    for name, obj in objects_now.items():
        kind = checkpoint.states.get(name, (_state.kind_of(obj), None))[0]
        captured = _state.capture(obj, kind, objects_now)
        for entry, _, live in _state.split_entries(name, kind, captured):
            if entry not in checkpoint.states:
                if entry == name:
                    out.append(Difference(name, None, "the checkpoint does not hold it"))
                continue
            out += differences(checkpoint.states[entry][1], live, entry, exact)
    rng = checkpoint.states.get(_state.RNG_KEY)
    if rng is not None:
        live_rng = _state.capture_rng()
        used = {k for k in live_rng if rng_since is None or k not in rng_since
                or differences(rng_since[k], live_rng[k])}
        out += differences({k: v for k, v in rng[1].items() if k in used},
                           {k: v for k, v in live_rng.items() if k in used and k in rng[1]},
                           "random generators", exact)
    return out
