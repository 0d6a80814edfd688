"""The buffers of one run, without threads or I/O: loop frames, numeric series, the batch.

Loop context is a chain of :class:`~flordb.loops.Frame` objects; hot numeric values go to
per-frame, per-name typed arrays (:class:`~flordb.loops.Series`); a full array is *sealed* into
a chunk of the pending :class:`~flordb.store.writer.Batch`. :meth:`Recorder.take_batch` hands
everything buffered over for one write. When too many values are pending the recorder calls
``on_full`` (the runtime flushes); it never writes anything itself.
"""

from __future__ import annotations

import json
import struct
import sys
import time
from array import array
from collections.abc import Callable, Iterable
from typing import Any

from flordb import values as _values
from flordb.errors import BadNameError, BadTypeError
from flordb.loops import Frame, Series
from flordb.store.writer import Batch, Chunk, Record, RecordKind

#: Values per sealed chunk of one series.
CHUNK = 1 << 16
#: Pending sealed values that force a flush, whatever the timer says.
FLUSH_VALUES = 1 << 18
SCALARS = frozenset((int, float, str, bool))
_BIG_ENDIAN = sys.byteorder == "big"


class Recorder:
    """What one run has logged and not yet handed over for writing."""

    def __init__(self, on_full: Callable[[], None] = lambda: None) -> None:
        self.on_full = on_full
        self.warned: set[str] = set()  # names whose values could not be pickled (said once)
        self.reset()

    def reset(self) -> None:
        """Forget the run's buffers (in place: ``flor.log`` holds this object)."""
        self.top = Frame(0, "", None, 0)
        self.frame = self.top
        self.live: dict[int, Frame] = {}
        self.seq = 0
        self.pending = Batch()
        self.pending_values = 0
        self.flush_due = False  # set by the flush timer; acted on at the next boundary
        self.timing: dict[tuple[str, int], list[float]] = {}

    # ------------------------------------------------------------------ values
    def add(self, fr: Frame, name: str, value: Any, kind: RecordKind = "log") -> None:
        """Buffer ``value`` in ``fr``: in a numeric series, else as a typed record."""
        t = type(value)
        if kind == "log" and (t is float or (t is int and -(2**63) <= value < 2**63)):
            table = fr.floats if t is float else fr.ints
            s = table.get(name)
            if s is None:
                s = table[name] = Series(name, "d" if t is float else "q")
            s.vals.append(value)
            s.iters.append(fr.i)
            if len(s.vals) >= CHUNK:
                self.seal(fr, s)
            return
        stored, vtype, text = _values.encode(value)
        if vtype == "repr" and name not in self.warned:
            self.warned.add(name)
            print(f"flordb: {name!r}: {type(value).__name__} cannot be pickled ({text}); its "
                  "repr is stored instead", file=sys.stderr)
        self.seq += 1
        self.pending.records.append(Record(fr.loop_id, fr.i, self.seq, name, stored, vtype,
                                           text, kind))
        self.pending_values += 1
        if self.pending_values >= FLUSH_VALUES:
            self.on_full()

    def seal(self, fr: Frame, s: Series) -> None:
        """Move the values of ``s`` into a pending chunk; ``on_full`` if too much is pending."""
        self._seal(fr, s)
        if self.pending_values >= FLUSH_VALUES:
            self.on_full()

    def _seal(self, fr: Frame, s: Series) -> None:
        n = len(s.vals)
        if not n:
            return
        iters, vals = s.iters, s.vals
        s.iters, s.vals = array("q"), array(s.typecode)
        if _BIG_ENDIAN:
            iters.byteswap()
            vals.byteswap()
        self.seq += 1
        self.pending.chunks.append(Chunk(s.name, fr.loop_id, self.seq,
                                         "f8" if s.typecode == "d" else "i8", n,
                                         iters.tobytes(), vals.tobytes()))
        self.pending_values += n

    # ------------------------------------------------------------------ loops
    def enter_loop(self, name: str, iterable: Iterable[Any], loop_id: int) -> Frame:
        """Open loop instance ``loop_id`` under the current frame and make it current."""
        parent = self.frame
        fr = Frame(loop_id, name, parent, parent.depth + 1)
        start = step = None
        if type(iterable) is range:
            start, step = iterable.start, iterable.step
            fr.range = (start, step)
        else:
            fr.values = []
        try:
            fr.total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            pass
        self.pending.loops_new.append((loop_id, parent.loop_id, parent.i, name, fr.depth,
                                       start, step))
        self.live[loop_id] = fr
        self.frame = fr
        return fr

    def exit_loop(self, fr: Frame, n: int) -> bool:
        """Close ``fr`` after ``n`` iterations (the context returns to its parent); whether an
        outermost loop ended (then the run's values should be written)."""
        if fr.loop_id not in self.live:
            return False  # already retired by the end of its run
        self.retire(fr, n)
        cur: Frame | None = self.frame
        while cur is not None and cur is not fr:
            cur = cur.parent
        if cur is fr and fr.parent is not None:  # fr is current or below it: the context
            self.frame = fr.parent               # returns to fr's parent
        return fr.depth == 1

    def retire(self, fr: Frame, n: int) -> None:
        """Move a finished loop instance's buffers into the pending batch."""
        del self.live[fr.loop_id]
        t = self.timing.setdefault((fr.name, fr.depth), [0, 0, 0.0])
        t[0] += 1
        t[1] += n
        t[2] += time.perf_counter() - fr.t0
        for table in (fr.floats, fr.ints):
            for s in table.values():
                self._seal(fr, s)
        self._take_values(fr)
        self.pending.loops_ended.append((n, fr.loop_id))

    def retire_all(self) -> None:
        """Retire every open loop instance (the run ends inside them)."""
        for fr in list(self.live.values()):
            self.retire(fr, fr.i + 1)

    def _take_values(self, fr: Frame) -> None:
        if fr.values:
            self.pending.loop_values.append(
                (fr.loop_id, fr.values_from, json.dumps(fr.values, default=repr)))
            fr.values_from += len(fr.values)
            del fr.values[:]  # in place: the loop generator holds this list

    # ------------------------------------------------------------------ hand-over
    def take_batch(self) -> Batch:
        """Everything buffered, as one batch; the buffers start empty again."""
        self.flush_due = False
        for fr in (self.top, *self.live.values()):
            for table in (fr.floats, fr.ints):
                for s in table.values():
                    self._seal(fr, s)
            self._take_values(fr)
        batch, self.pending = self.pending, Batch()
        self.pending_values = 0
        return batch

    def timing_rows(self, outer: dict[str, Any]) -> list[tuple]:
        """``loop_timing`` rows: totals per loop; outer loops add the checkpointer's statistics
        (``outer``: loop name -> its :class:`~flordb.checkpoint.LoopStats`)."""
        rows = []
        for (name, depth), (instances, iterations, seconds) in self.timing.items():
            ls = outer.get(name) if depth == 1 else None
            mean = ls.mean if ls else (seconds / iterations if iterations else None)
            rows.append((name, depth, instances, iterations, seconds, mean,
                         ls.std if ls else None, ls.count if ls else 0,
                         ls.spent if ls else 0.0))
        return rows

    def put_back(self, batch: Batch) -> None:
        """A batch that could not be written, kept for a later try (or the error)."""
        self.pending = batch

    def drop_pending(self) -> None:
        """Forget every buffered value (the store cannot take them)."""
        self.pending = Batch()
        self.pending_values = 0
        for fr in (self.top, *self.live.values()):
            for table in (fr.floats, fr.ints):
                for s in table.values():
                    del s.vals[:], s.iters[:]

    def last_values(self, fr: Frame, limit: int = 8) -> dict[str, Any]:
        """The latest value of each numeric name in ``fr`` (for a progress line)."""
        last: dict[str, Any] = {}
        for table in (fr.floats, fr.ints):
            for name, s in table.items():
                if s.vals:
                    last[name] = s.vals[-1]
        for chunk in self.pending.chunks:
            last.setdefault(chunk.name, struct.unpack("<d" if chunk.dtype == "f8" else "<q",
                                                      chunk.vals[-8:])[0])
        return dict(list(last.items())[:limit])


def check_name(name: Any, what: str) -> None:
    """A name must be a str that SQLite can store (valid UTF-8: no lone surrogates)."""
    if type(name) is not str:
        raise BadTypeError(f"{what} name must be a str, not {type(name).__name__}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise BadNameError(f"{what} name {name!r} is not valid UTF-8 (it holds a lone "
                           "surrogate)") from None


def element(x: Any) -> Any:
    """A loop element's value for the ``<loop>_value`` column, or None when not a scalar."""
    v = _values.as_scalar(x)
    return v if type(v) in SCALARS else None
