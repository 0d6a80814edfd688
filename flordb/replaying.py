"""Replay mode of the runtime: the child process of one replay work unit.

``flordb replay`` starts a patched past version of a script with ``$FLORDB_REPLAY``
(:data:`flordb.store.replays.UNIT_ENV`) set to a unit id. The runtime then records nothing
new about the run: it attaches to the replayed run,
answers ``flor.arg`` with the recorded values, gives each loop instance its recorded
``loop_id`` (so new values land in the recorded context), and follows the unit's
:class:`~flordb.store.replays.Directive`:

- fast-forward the main loop to the unit's checkpoint, restoring the enrolled objects and RNG
  states there, then run iterations ``start <= i < stop``;
- with ``skip_inner``, skip the inner loops of an iteration whose next checkpoint exists,
  restoring that checkpoint where a skipped loop ends (the state the loop would have left),
  and restore each iteration's own checkpoint at its start;
- exit as soon as nothing the unit must record is left to run;
- at every boundary it reaches by executing an iteration (not by skipping its inner loops)
  where the recording took a checkpoint, compare the live state of every enrolled object and
  the RNGs with that checkpoint (:func:`flordb.checkpoint.compare`). The first difference
  ends the unit with :data:`~flordb.store.replays.DIVERGED_EXIT`: the replay no longer
  follows the run it back-fills, and the driver keeps none of its values.

Values are written pending (see :mod:`flordb.store.replays`); only the names the directive
asks for are kept, and only in the unit's window.
"""

from __future__ import annotations

import os
import sys
from array import array
from collections import Counter, defaultdict
from collections.abc import Generator, Iterable, Iterator
from contextlib import AbstractContextManager
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from flordb import checkpoint
from flordb.errors import ReplayUnitError
from flordb.loops import Frame, LoopHost
from flordb.state import capture_rng
from flordb.store import replays
from flordb.store.db import discarded_transaction
from flordb.store.executions import recorded_args
from flordb.store.handle import Store
from flordb.store.redact import REDACTED
from flordb.store.writer import Batch, Chunk, ReplayWriter

if TYPE_CHECKING:
    from flordb.loops import RunHost
    from flordb.modes import Status
    from flordb.project import Project
    from flordb.store.db import Connection
    from flordb.store.io import Direction, IoKind


class ReplayMode:
    """The :class:`~flordb.modes.Mode` of a replay unit's child process: its directive and
    the recorded run it fills."""

    replaying = True

    def __init__(self, root: Path, unit_id: int) -> None:
        self.root = root
        self.store = Store.open(root)
        conn = self.conn = self.store.conn
        d = self.directive = replays.directive(conn, unit_id)
        self.writer: ReplayWriter | None = ReplayWriter(root, d.run_id, unit_id)
        self.keep = set(d.new_names) | set(d.compare_names)
        self.args = recorded_args(conn, d.run_id).get(d.run_id, {})
        self.loops: dict[tuple[int, int, str], list[int]] = defaultdict(list)
        self.top_of: dict[int, tuple[int, int]] = {}  # loop_id -> (depth-1 ancestor, its iter)
        parents: dict[int, tuple[int, int]] = {}
        for loop in self.store.loops(d.run_id):
            self.loops[(loop.parent_id, loop.parent_iter, loop.name)].append(loop.loop_id)
            parents[loop.loop_id] = (loop.parent_id, loop.parent_iter)
        for loop_id in parents:
            node, it = loop_id, 0
            while parents[node][0] != 0:
                node, it = parents[node]
            self.top_of[loop_id] = (node, it)
        self.entered: Counter[tuple[int, int, str]] = Counter()
        self.unmatched = 0
        self.available: set[int] = set()
        if d.main_loop_id is not None:
            self.available = set(checkpoint.available(conn, d.run_id, d.main_loop_id, root))
        self.phase = "prefix"
        self.main: Frame | None = None
        self.checks = replays.UnitChecks()
        self.rng_start: dict[str, Any] = {}  # the generators' states where execution began

    # ------------------------------------------------------------------ the mode
    def begin(self, project: Project) -> tuple[int, str | None]:
        """Attach to the recorded run: no new run row."""
        return self.directive.run_id, None

    def on_begin(self, host: RunHost) -> None:
        """Nothing runs beside a replayed run: its output and snapshot are the recording's."""

    def commit(self, host: RunHost) -> None:
        """The replayed run ends at its ``flor.commit()``: later runs are not this unit's."""
        self.finish(host)

    def end_cell(self, host: RunHost, failed: bool) -> None:
        """A replayed notebook run is the recording's: its cells end nothing."""

    def ending(self) -> None:
        """Nothing ran beside the replayed run."""

    def end(self, status: Status) -> int:
        """A replayed run is the recording's: its replay never ends it."""
        return 0

    def at_exit(self, host: RunHost) -> None:
        """Write what is buffered (unless the script failed) and release the store."""
        if not host.failed:
            host.flush()
        self.close()

    def on_store_fault(self, exc: BaseException) -> None:
        """A unit that cannot write its store fails, and says why."""
        raise exc

    def transaction(self, conn: Connection) -> AbstractContextManager[Any]:
        """Rolled back: the recorded run made those records, and re-executing it must not
        make them again (or stamp its labels with a new time)."""
        return discarded_transaction(conn)

    def record_io(self, run_id: int, direction: Direction, kind: IoKind, ref: str,
                  checksum: str | None, nbytes: int | None, as_of: float | None) -> None:
        """A replay re-reads what the run read: nothing new to record."""

    def loop_id(self, parent: Frame, name: str) -> int:
        """The recorded id of the loop instance being entered (negative when none matches)."""
        key = (parent.loop_id, parent.i, name)
        k = self.entered[key]
        self.entered[key] += 1
        ids = self.loops.get(key, [])
        if k < len(ids):
            return ids[k]
        self.unmatched += 1
        return -self.unmatched

    def arg(self, name: str, default: Any) -> Any:
        """The replayed run's recorded value of ``flor.arg(name)`` (``default`` for a value
        that was redacted as a credential)."""
        value = self.args.get(name, default)
        return default if value == REDACTED else value

    def loop(self, rt: LoopHost, name: str, iterable: Iterable[Any]
             ) -> Generator[Any, None, None]:
        """``flor.loop`` in replay mode."""
        fr = rt.enter_loop(name, iterable)
        n = 0
        try:
            if fr.depth == 1 and fr.loop_id == self.directive.main_loop_id:
                yield from self._main(rt, fr, iterable)
                return
            if self.main is not None and self._skips(fr):
                self._restore(rt, self.main.i + 1)
                return
            if self._done_at(fr):
                self.finish(rt)  # a cross-check that has what it compares
            for x in iterable:
                fr.i = n
                n += 1
                rt.recorder.frame = fr
                yield x
                if rt.recorder.flush_due:
                    rt.flush()
        finally:
            rt.exit_loop(fr, n)

    def _skips(self, fr: Frame) -> bool:
        main = self.main
        return (self.directive.skip_inner and main is not None and fr.depth >= 2
                and self.top_of.get(fr.loop_id, (None,))[0] == main.loop_id
                and main.i + 1 in self.available)

    def _done_at(self, fr: Frame) -> bool:
        d, main = self.directive, self.main
        return (d.stop_at_inner and main is not None and fr.depth >= 2
                and self.top_of.get(fr.loop_id, (None,))[0] == main.loop_id
                and main.i == d.stop - 1)

    def _main(self, rt: LoopHost, fr: Frame, iterable: Iterable[Any]) -> Iterator[Any]:
        d = self.directive
        rt.flush()  # top-level values logged so far belong to the prefix
        self.phase = "main"
        self.main = fr
        if d.stop <= d.start and not (d.owns_suffix and d.run_suffix):
            self.finish(rt)  # a prefix-only unit: nothing it records comes after this
        ck = None
        if d.restore_from is not None:
            ck = checkpoint.load(self.root, self.conn, d.run_id, fr.loop_id, d.restore_from)
        first = ck.iteration if ck is not None else 0
        if isinstance(iterable, (range, list, tuple)):
            elements: Iterable[Any] = iterable[first:]
        else:
            elements = islice(iterable, first, None)  # consumed, not run
        i = first
        for x in elements:
            if i >= d.stop:
                break
            if ck is not None:
                self._apply(rt, ck)
                ck = None
            if not self.rng_start:
                self.rng_start = capture_rng()
            elif d.skip_inner and i in self.available:
                self._restore(rt, i)
            fr.i = i
            rt.recorder.frame = fr
            yield x
            i += 1
            if not d.skip_inner and i in self.available:
                self._check(rt, i)  # boundary i, reached by executing iteration i - 1
            if rt.recorder.flush_due:
                rt.flush()
        if ck is not None:  # the checkpoint is the loop's end state: nothing left to run
            self._apply(rt, ck)
        rt.recorder.frame = fr
        rt.flush()
        if not (d.owns_suffix and d.run_suffix):
            self.finish(rt)
        self.phase = "suffix"

    def _restore(self, rt: LoopHost, iteration: int) -> None:
        d = self.directive
        ck = None if d.main_loop_id is None else \
            checkpoint.load(self.root, self.conn, d.run_id, d.main_loop_id, iteration)
        if ck is None or ck.iteration != iteration:
            raise ReplayUnitError(f"flordb replay: the checkpoint of iteration {iteration} of run "
                               f"{d.run_id} cannot be read")
        self._apply(rt, ck)

    def _check(self, rt: LoopHost, iteration: int) -> None:
        """Compare the live state at boundary ``iteration`` with the recording's checkpoint
        there; on a difference, end the unit as diverged."""
        d = self.directive
        assert d.main_loop_id is not None
        ck = checkpoint.load(self.root, self.conn, d.run_id, d.main_loop_id, iteration)
        if ck is None or ck.iteration != iteration or not rt.enrolled:
            return
        live = {name: obj for name, (obj, _) in rt.enrolled.items()}
        found = checkpoint.compare(ck, live, not _accelerated(), self.rng_start)
        if not found:
            self.checks.agreed.append(iteration)
            return
        worst = max(found, key=lambda x: -1.0 if x.max_abs_diff is None else x.max_abs_diff)
        self.checks.diverged = replays.StateDivergence(
            iteration, len(found), worst.path, worst.max_abs_diff, worst.describe())
        self._report()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(replays.DIVERGED_EXIT)

    def _report(self) -> None:
        if self.writer is not None and (self.checks.agreed or self.checks.diverged):
            self.writer.report(self.checks.to_json())

    @staticmethod
    def _apply(rt: LoopHost, ck: checkpoint.Checkpoint) -> None:
        if not rt.enrolled:
            raise ReplayUnitError("flordb replay: restoring a checkpoint needs the objects enrolled"
                               " with flor.checkpointing around the loop, as when recorded")
        checkpoint.apply(ck, {name: obj for name, (obj, _) in rt.enrolled.items()})

    def finish(self, rt: LoopHost) -> None:
        """Write what is buffered and end the process: the rest of the script is not needed."""
        rt.flush()
        self.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    # ------------------------------------------------------------------ writing
    def flush(self, batch: Batch) -> None:
        """Write the part of ``batch`` this unit keeps (its names, in its window)."""
        kept = Batch()
        for chunk in batch.chunks:
            name, loop_id, seq, dtype, n, iters, vals = chunk
            if name not in self.keep:
                continue
            window = self._window(loop_id)
            if window is None:
                kept.chunks.append(chunk)
            elif window is not False:
                kept.chunks.extend(_slice_chunk(chunk, *window))
        for record in batch.records:
            loop_id, it, name = record.loop_id, record.iteration, record.name
            if name in self.keep and record.kind == "log":
                window = self._window(loop_id)
                if window is None or (window is not False and window[0] <= it < window[1]):
                    kept.records.append(record)
        if (kept.chunks or kept.records) and self.writer is not None:
            self.writer.flush(kept)

    def _window(self, loop_id: int) -> tuple[int, int] | Literal[False] | None:
        """None: keep all values of this context; False: keep none; (a, b): iterations a..b-1.

        A tuple applies to the iterations of the main loop itself; for loops nested in it, the
        decision is taken on the enclosing main-loop iteration and returned as None/False.
        """
        d = self.directive
        if loop_id < 0:
            return False  # a loop the recording does not have: no context to attach to
        if loop_id == 0:
            owned = d.owns_suffix if self.phase == "suffix" else d.owns_prefix
            return None if owned else False
        top, it = self.top_of.get(loop_id, (loop_id, 0))
        if top == d.main_loop_id:
            if loop_id == top:
                return (d.start, d.stop)
            return None if d.start <= it < d.stop else False
        owned = d.owns_suffix if d.main_loop_id is None or top > d.main_loop_id \
            else d.owns_prefix
        return None if owned else False

    def close(self) -> None:
        if self.writer is not None:
            self._report()
            self.writer.close()
            self.writer = None
        self.store.close()


def _accelerated() -> bool:
    """Whether state may have been computed on an accelerator (then compared within a
    tolerance, see :mod:`flordb.statediff`)."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()


def _slice_chunk(chunk: Chunk, start: int, stop: int) -> list[Chunk]:
    """The part of a series chunk whose iterations lie in ``start..stop-1``."""
    name, loop_id, seq, dtype, n, iters_b, vals_b = chunk
    iters, vals = array("q"), array("d" if dtype == "f8" else "q")
    iters.frombytes(iters_b)
    vals.frombytes(vals_b)
    big = sys.byteorder == "big"
    if big:
        iters.byteswap()
        vals.byteswap()
    keep = [k for k, it in enumerate(iters) if start <= it < stop]
    if len(keep) == n:
        return [chunk]
    if not keep:
        return []
    it2, v2 = array("q", (iters[k] for k in keep)), array(vals.typecode, (vals[k] for k in keep))
    if big:
        it2.byteswap()
        v2.byteswap()
    return [Chunk(name, loop_id, seq, dtype, len(keep), it2.tobytes(), v2.tobytes())]
