"""The runtime: the one object that holds a recording process's state.

A process records at most one run at a time. The run starts lazily at the first ``log``,
``arg``, ``loop`` or ``checkpointing`` and ends at ``commit`` or at exit; reads start none.
What recording and replaying do differently (args, loop ids, writing, finishing) is the run's
:class:`~flordb.modes.Mode`, chosen once per process.

Loop context is a chain of :class:`~flordb.loops.Frame` objects; hot numeric values go to
per-frame, per-name typed arrays (:class:`~flordb.loops.Series`); a full array is *sealed* into
a chunk of the pending :class:`~flordb.store.writer.Batch`, and the batch is written in one
transaction when the flush timer has fired at a loop boundary, when too many values are
pending, when an outer loop ends, at ``commit`` and at exit. Memory therefore stays flat in the
number of values logged.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sqlite3
import struct
import sys
import threading
import time
from array import array
from collections.abc import Generator, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flordb import capture as _capture
from flordb import checkpoint, settings
from flordb import state as _state
from flordb import values as _values
from flordb.errors import BadNameError, BadTypeError, BadValueError, MisuseError
from flordb.loops import Frame, Series
from flordb.modes import Mode, RecordMode, kwarg
from flordb.store.io import Direction, IoKind
from flordb.store.redact import REDACTED, is_secret
from flordb.store.writer import Batch, Chunk, Record, RecordKind, Status

if TYPE_CHECKING:
    from flordb.project import Project
    from flordb.replaying import ReplayMode

#: Values per sealed chunk of one series.
CHUNK = 1 << 16
#: Pending sealed values that force a flush, whatever the timer says.
FLUSH_VALUES = 1 << 18
#: Args and top-level values echoed to the terminal per second, at most.
ECHO_PER_SECOND = 20
_SCALARS = frozenset((int, float, str, bool))
_BIG_ENDIAN = sys.byteorder == "big"


class Runtime:
    """Recording state of a process's main thread (``flordb.runtime.RUNTIME``) or of one other
    thread (:func:`current`)."""

    def __init__(self, process: Runtime | None = None) -> None:
        """The process's runtime, or (with ``process``) that of another thread, sharing its
        ``--kwargs`` and project."""
        self.kwargs: dict[str, str] = process.kwargs if process else {}
        self.kwargs_read: set[str] = process.kwargs_read if process else set()
        #: The command line as typed (``--kwargs`` included), when it differs from sys.argv.
        self.argv: list[str] = process.argv if process else []
        env = settings.read()
        self.echo = env.echo
        self._echo_window = (0, 0, 0)  # (second, lines shown in it, values not shown)
        self.flush_interval = env.flush_s
        self.epsilon = env.epsilon
        self.enrolled: dict[str, tuple[Any, str]] = {}
        self.sticky_args: dict[str, Any] = {}  # in a notebook: args carried into later runs
        self.project: Project | None = process.project if process else None
        self.main = process is None
        #: In a replay's child process: the unit it runs.
        self.replay_unit = env.replay_unit
        #: Recording or replaying, chosen when the process's first run begins.
        self.mode: Mode | None = None
        self._hooks_installed = False
        self.stopped = False  # the store could not be written: recording stopped (said once)
        self._warned: set[str] = set()  # names whose values could not be pickled
        self._inherited: list[Any] = []
        self._reset_run()
        if self.main and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    # ----------------------------------------------------------------- run lifecycle
    def _reset_run(self) -> None:
        self.run_id: int | None = None
        self.tstamp: str | None = None
        self.top = Frame(0, "", None, 0)
        self.frame = self.top
        self.live: dict[int, Frame] = {}
        self.seq = 0
        self.pending = Batch()
        self.pending_values = 0
        self.flush_due = False
        self.failed = False
        self.args: dict[str, Any] = {}
        self.outputs: dict[str, Path] = {}  # declared output files, hashed at the run's end
        self.timing: dict[tuple[str, int], list[float]] = {}
        self.checkpointer: checkpoint.Checkpointer | None = None
        self._flushing = False
        self._terminate = False
        self._provenance: threading.Thread | None = None
        self._provenance_error: BaseException | None = None
        self._timer_stop: threading.Event | None = None
        self.capture: _capture.Capture | None = None  # what the run prints and logs

    @property
    def replaying(self) -> bool:
        """Whether this process is a replay unit's child (re-executing a recorded run)."""
        return self.replay_unit is not None

    def project_root(self) -> Path:
        """The root of the project this process reads and records."""
        return self.resolve_project().root

    def resolve_project(self) -> Project:
        """The project this process reads and records (located on first use)."""
        if self.project is None:
            from flordb.project import locate

            self.project = locate()
        return self.project

    def reset(self) -> None:
        """Forget the project, the mode and the ``--kwargs`` (ending an active run first):
        the next call starts afresh. For tests that record into several projects."""
        if self.run_id is not None:
            self.commit()
        if self.mode is not None:
            self.mode.close()
        self.mode = None
        self.project = None
        self.kwargs.clear()
        self.kwargs_read.clear()

    def ensure_run(self) -> None:
        """Start a run if none is active."""
        if self.run_id is None:
            self._begin_run()

    def _begin_run(self) -> None:
        if self.stopped:
            return  # the store cannot be written: nothing is recorded (said once)
        p = self.resolve_project()
        try:
            if self.mode is None:
                self.mode = self._choose_mode(p)
            self.run_id, self.tstamp = self.mode.begin(p)
        except (sqlite3.Error, OSError) as exc:
            if self.replaying:
                raise  # a replay unit that cannot reach its store fails, and says why
            self._stop_if_fault(exc)
            return
        self._start_timer()
        self._install_hooks()
        if self.replaying:
            return
        if self.main and _capture.enabled():
            self.capture = _capture.Capture()
            self.capture.start()
        from flordb.project import script_name

        self._provenance = threading.Thread(
            target=self._record_provenance,
            args=(p.root, p.in_git, p.projid, self.tstamp, script_name(p), self.run_id),
            name="flordb-provenance", daemon=True)
        self._provenance.start()
        for name, value in self.sticky_args.items():
            self._record(self.top, name, REDACTED if is_secret(name) else value, "arg")

    def _choose_mode(self, p: Project) -> Mode:
        if self.replay_unit is not None:
            from flordb.replaying import ReplayMode

            return ReplayMode(p.root, self.replay_unit)
        if not p.in_git:
            print(f"flordb: {p.root} is not inside a git repository: runs are recorded "
                  "without code snapshots, and replay will need one.", file=sys.stderr)
        return RecordMode(p.root, self.kwargs, self.kwargs_read, self.argv)

    def _record_provenance(self, *args: Any) -> None:
        from flordb.store import provenance

        try:
            provenance.record(*args)
        except BaseException as exc:  # reported by _end_run, never dropped
            self._provenance_error = exc

    def _start_timer(self) -> None:
        stop = self._timer_stop = threading.Event()

        def tick() -> None:
            while not stop.wait(self.flush_interval):
                self.flush_due = True

        threading.Thread(target=tick, name="flordb-flush-timer", daemon=True).start()

    def _install_hooks(self) -> None:
        if self._hooks_installed:
            return
        self._hooks_installed = True
        atexit.register(self.close)
        if not self.main:
            return  # an uncaught exception ends a thread, not the process's runs
        previous_hook = sys.excepthook

        def excepthook(kind: Any, exc: BaseException, tb: Any) -> None:
            self.failed = True
            previous_hook(kind, exc, tb)

        sys.excepthook = excepthook
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
            signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        if self._flushing:
            self._terminate = True  # finish the flush in progress first
            return
        self._die_by_sigterm()

    def _die_by_sigterm(self) -> None:
        if self.run_id is not None and not self.replaying:
            self._end_run("killed")
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    def _after_fork(self) -> None:
        # A forked child (e.g. a data-loader worker) must not write its parent's buffers
        # again; it starts with no run, and a run of its own if it logs. SQLite connections
        # must not be used across fork, so the inherited one is kept open, unused.
        self._inherited.append(self.mode)
        self.mode = None
        self._reset_run()
        self.enrolled.clear()

    def commit(self) -> None:
        """End the active run durably; the next logging call starts a new run."""
        if self.live:
            names = ", ".join(f.name for f in self.live.values())
            raise MisuseError(f"flor.commit() inside flor.loop ({names}): commit between "
                               "loops, where no loop iteration is in progress")
        if self.replaying and self.run_id is not None:
            self._replay_mode().finish(self)  # the replayed run ends here, not later runs
        if self.run_id is not None:
            self._end_run("completed")

    def end_cell(self, failed: bool) -> None:
        """After a notebook cell: end the run it logged into (none while a loop is open)."""
        if self.run_id is None or self.live or self.replaying:
            return
        self.sticky_args.update(self.args)
        self._end_run("failed" if failed else "completed")

    def close(self) -> None:
        """At exit: end the active run (``failed`` after an uncaught exception)."""
        if self.replaying:
            if self.mode is not None:
                if not self.failed:
                    self.flush()
                self.mode.close()
            return
        if self.run_id is not None:
            self._end_run("failed" if self.failed else "completed")
        unused = sorted(set(self.kwargs) - self.kwargs_read)
        if unused and self.mode is not None:
            print(f"flordb: --kwargs never read by flor.arg: {', '.join(unused)}",
                  file=sys.stderr)

    def _end_run(self, status: Status) -> None:
        for fr in list(self.live.values()):
            self._retire(fr, fr.i + 1)
        if self.checkpointer is not None:
            try:
                self.checkpointer.finish()
            except (sqlite3.Error, OSError, RuntimeError) as exc:
                self._stop_if_fault(exc)
        if self.capture is not None:
            self.capture.stop()  # its last lines go with the final flush
        self.flush()
        if self.stopped:
            self._abandon_run()
            return
        for ref, path in self.outputs.items():
            self._record_file("output", ref, path)
        self._stop_background()
        error = self._provenance_error
        n = self._mode().end(status)
        if self.echo:
            print(f"flordb: run {self.tstamp} {status}: {n:,} values", file=sys.stderr)
        self._reset_run()
        if error is not None:
            why = (str(error).strip().splitlines() or [""])[0]
            if isinstance(error, ImportError) and "git" in why.lower():
                why = "git is not installed or not on PATH (" + why + ")"
            print(f"flordb: could not record the code snapshot/environment of that run: "
                  f"{type(error).__name__}: {why}", file=sys.stderr)

    def _abandon_run(self) -> None:
        """End a run whose store stopped taking writes: marked failed if the store still
        takes that one (else the next process that opens it marks it), nothing else."""
        self._stop_background()
        try:
            self._mode().end("failed")
        except (sqlite3.Error, OSError):
            pass  # the line printed when recording stopped says why
        self._reset_run()

    def _stop_background(self) -> None:
        """Stop the run's flush timer and wait for its snapshot/environment thread."""
        if self._timer_stop is not None:
            self._timer_stop.set()
        if self._provenance is not None:
            self._provenance.join()

    # ----------------------------------------------------------------- logging
    def log_slow(self, name: str, value: Any) -> Any:
        """Everything ``flordb.log`` does not do inline: first values, non-floats, checks."""
        _check_name(name, "flor.log")
        self.ensure_run()
        fr = self.frame
        v = _values.as_scalar(value)
        t = type(v)
        if t is float or (t is int and -(2**63) <= v < 2**63):
            table = fr.floats if t is float else fr.ints
            s = table.get(name)
            if s is None:
                s = table[name] = Series(name, "d" if t is float else "q")
            s.vals.append(v)
            s.iters.append(fr.i)
            if len(s.vals) >= CHUNK:
                self.seal(fr, s)
        else:
            self._record(fr, name, v, "log")
        if fr is self.top and self.echo:
            self._echo_value(name, v)
        if self.flush_due and not self.live:
            self.flush()
        return value

    def _record(self, fr: Frame, name: str, value: Any, kind: RecordKind) -> None:
        stored, vtype, text = _values.encode(value)
        if vtype == "repr" and name not in self._warned:
            self._warned.add(name)
            print(f"flordb: {name!r}: {type(value).__name__} cannot be pickled ({text}); its "
                  "repr is stored instead", file=sys.stderr)
        self.seq += 1
        self.pending.records.append(Record(fr.loop_id, fr.i, self.seq, name, stored, vtype, text,
                                     kind))
        self.pending_values += 1
        if self.pending_values >= FLUSH_VALUES:
            self.flush()

    def seal(self, fr: Frame, s: Series) -> None:
        """Move the values of ``s`` into a pending chunk; flush if too much is pending."""
        self._seal(fr, s)
        if self.pending_values >= FLUSH_VALUES:
            self.flush()

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

    def arg(self, name: str, default: Any) -> Any:
        """``flor.arg``: replayed value, else ``--kwargs`` value cast, else ``default``."""
        _check_name(name, "flor.arg")
        self.ensure_run()
        if name in self.args:
            return self.args[name]
        if self.mode is None:  # the store cannot be written: --kwargs still apply
            value = kwarg(self.kwargs, self.kwargs_read, name, default)
        else:
            value = self.mode.arg(name, default)
        self.args[name] = value
        if self.replaying:
            return value
        shown = REDACTED if is_secret(name) else value
        self._record(self.top, name, shown, "arg")
        if self.echo:
            self._echo_value(name, shown)
        return value

    # ----------------------------------------------------------------- loops
    def loop(self, name: str, iterable: Iterable[Any]) -> Generator[Any, None, None]:
        """Generator behind ``flor.loop``; see its docstring."""
        if self.replaying:
            self.ensure_run()
            return self._replay_mode().loop(self, name, iterable)
        return self._record_loop(name, iterable)

    def _record_loop(self, name: str, iterable: Iterable[Any]) -> Generator[Any, None, None]:
        fr = self.enter_loop(name, iterable)
        n = 0
        values = fr.values
        try:
            if fr.depth == 1:
                for x in iterable:
                    fr.i = n
                    n += 1
                    self.frame = fr
                    if values is not None:
                        values.append(x if type(x) in _SCALARS else _element(x))
                    yield x
                    if self.flush_due or self.enrolled:
                        self._outer_boundary(fr, n)
            else:
                for x in iterable:
                    fr.i = n
                    n += 1
                    self.frame = fr
                    if values is not None:
                        values.append(x if type(x) in _SCALARS else _element(x))
                    yield x
                    if self.flush_due:
                        self.flush()
        finally:
            self.exit_loop(fr, n)

    def enter_loop(self, name: str, iterable: Iterable[Any]) -> Frame:
        """Open a loop instance under the current frame and make it current."""
        _check_name(name, "flor.loop")
        self.ensure_run()
        parent = self.frame
        loop_id = self.mode.loop_id(parent, name) if self.mode is not None \
            else len(self.live) + 1  # the store cannot be written: any distinct id will do
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
        self.pending.loops_new.append((fr.loop_id, parent.loop_id, parent.i, name, fr.depth,
                                       start, step))
        self.live[fr.loop_id] = fr
        self.frame = fr
        return fr

    def exit_loop(self, fr: Frame, n: int) -> None:
        """Close ``fr`` after ``n`` iterations; the context returns to its parent."""
        if fr.loop_id not in self.live:
            return  # already retired by the end of its run
        self._retire(fr, n)
        cur: Frame | None = self.frame
        while cur is not None and cur is not fr:
            cur = cur.parent
        if cur is fr and fr.parent is not None:  # fr is current or below it: the context
            self.frame = fr.parent               # returns to fr's parent
        if fr.depth == 1:
            self.flush()

    def _retire(self, fr: Frame, n: int) -> None:
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

    def _take_values(self, fr: Frame) -> None:
        if fr.values:
            self.pending.loop_values.append(
                (fr.loop_id, fr.values_from, json.dumps(fr.values, default=repr)))
            fr.values_from += len(fr.values)
            del fr.values[:]  # in place: the loop generator holds this list

    def _outer_boundary(self, fr: Frame, done: int) -> None:
        if self.enrolled and not self.stopped and self.run_id is not None:
            try:
                if self.checkpointer is None:
                    self.checkpointer = checkpoint.Checkpointer(
                        self.project_root(), self.epsilon, files=self._flor_files(fr))
                self.checkpointer.boundary(self.run_id, fr, done, self.enrolled)
            except (sqlite3.Error, OSError, RuntimeError) as exc:
                self._stop_if_fault(exc)
        if self.flush_due:
            if self.echo:
                self._echo(fr)
            self.flush()

    def _flor_files(self, fr: Frame) -> checkpoint.FlorFiles | None:
        """Where FlorDB scripts look for this run's checkpoint files (``flor.HOMEDIR``)."""
        if self.replaying or self.tstamp is None:
            return None
        from flordb.store.db import store_dir

        start, step = fr.range or (None, None)
        p = self.resolve_project()
        return checkpoint.FlorFiles(store_dir(p.root), home_dir(create=False), p.projid,
                                    self.tstamp, fr.name, start, step)

    def _echo_value(self, name: str, value: Any) -> None:
        """``name: value`` for an arg or a top-level log, as FlorDB prints them; at most
        ``ECHO_PER_SECOND`` lines a second, the rest counted in the next line shown."""
        now = int(time.monotonic())
        second, shown, held = self._echo_window
        if now != second:
            second, shown = now, 0
        if shown >= ECHO_PER_SECOND:
            self._echo_window = (second, shown, held + 1)
            return
        more = f" ({held:,} values not shown)" if held else ""
        print(f"flordb: {name}: {_short(value, quote=False)}{more}", file=sys.stderr)
        self._echo_window = (second, shown + 1, 0)

    def _echo(self, fr: Frame) -> None:
        last: dict[str, Any] = {}
        for table in (fr.floats, fr.ints):
            for name, s in table.items():
                if s.vals:
                    last[name] = s.vals[-1]
        for chunk in self.pending.chunks:
            last.setdefault(chunk.name, struct.unpack("<d" if chunk.dtype == "f8" else "<q",
                                                      chunk.vals[-8:])[0])
        if not last:
            return
        of = f"/{fr.total}" if fr.total is not None else ""
        shown = " ".join(f"{k}={_short(v)}" for k, v in list(last.items())[:8])
        print(f"flordb: {fr.name} {fr.i + 1}{of} {shown}", file=sys.stderr)

    # ----------------------------------------------------------------- flushing
    def flush(self) -> None:
        """Write every buffered value of the active run in one transaction."""
        self.flush_due = False
        if self.stopped:
            self._drop_pending()
            return
        if self.run_id is None or self._flushing:
            return
        self._flushing = True
        try:
            for fr in (self.top, *self.live.values()):
                for table in (fr.floats, fr.ints):
                    for s in table.values():
                        self._seal(fr, s)
                self._take_values(fr)
            self.pending.timing = self._timing_rows()
            if self.capture is not None:
                self.pending.output.extend(self.capture.take())
            batch, self.pending = self.pending, Batch()
            self.pending_values = 0
            if batch:
                try:
                    self._mode().flush(batch)
                except (sqlite3.Error, OSError) as exc:
                    self.pending = batch  # kept if this is a bug, raised below
                    self._stop_if_fault(exc)
                except BaseException:
                    self.pending = batch  # keep the values for a later try or the error
                    raise
        finally:
            self._flushing = False
        if self._terminate:
            self._die_by_sigterm()

    def _stop_if_fault(self, exc: BaseException) -> None:
        """When ``exc`` is the store failing (full disk, read-only, damaged), stop recording
        with one line and let the script go on; anything else is a bug and is raised."""
        from flordb.store.db import store_dir, store_fault

        cause = store_fault(exc)
        if cause is None:
            raise exc
        if not self.stopped:
            self.stopped = True
            where = store_dir(self.project.root) if self.project is not None else "the store"
            print(f"flordb: recording stopped: cannot write to {where}: {cause}. What was "
                  f"written before is kept; values logged from now on are not stored.",
                  file=sys.stderr)
        self._drop_pending()

    def _drop_pending(self) -> None:
        self.pending = Batch()
        self.pending_values = 0
        for fr in (self.top, *self.live.values()):
            for table in (fr.floats, fr.ints):
                for s in table.values():
                    del s.vals[:], s.iters[:]

    def _timing_rows(self) -> list[tuple]:
        """``loop_timing`` rows: totals per loop; outer loops add checkpointer statistics."""
        by_name: dict[str, checkpoint.LoopStats] = {}
        if self.checkpointer is not None:
            for stats in sorted(self.checkpointer.loops.values(), key=lambda x: x.loop_id):
                by_name[stats.name] = stats
        rows = []
        for (name, depth), (instances, iterations, seconds) in self.timing.items():
            ls: checkpoint.LoopStats | None = by_name.get(name) if depth == 1 else None
            mean = ls.mean if ls else (seconds / iterations if iterations else None)
            rows.append((name, depth, instances, iterations, seconds, mean,
                         ls.std if ls else None, ls.count if ls else 0,
                         ls.spent if ls else 0.0))
        return rows

    # ----------------------------------------------------------------- lifecycle records
    @contextmanager
    def writing(self) -> Iterator[tuple[sqlite3.Connection, int]]:
        """A write transaction on the store (its own connection, so any thread may use it) and
        the current run, started if needed: lifecycle records say which run made them.

        In a replay the transaction is rolled back: the recorded run made those records, and
        re-executing it must not make them again (or stamp its labels with a new time).
        """
        from flordb.store.db import connect_writer, discarded_transaction, write_transaction

        self.ensure_run()
        run_id = self.run_id
        if run_id is None:
            from flordb.errors import RecordingStoppedError

            raise RecordingStoppedError("recording stopped (the store cannot be written): "
                                        "this record is not kept")
        conn = connect_writer(self.project_root())
        try:
            with (discarded_transaction if self.replaying else write_transaction)(conn):
                yield conn, run_id
        finally:
            conn.close()

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """A read-only connection on the store, after flushing this process's values."""
        from flordb.store.db import connect_reader

        self.flush()
        conn = connect_reader(self.project_root())
        try:
            yield conn
        finally:
            conn.close()

    # ----------------------------------------------------------------- inputs and outputs
    def record_io(self, direction: Direction, kind: IoKind, ref: str, checksum: str | None,
                  nbytes: int | None = None, as_of: float | None = None) -> None:
        """Record an input or output of the current run (started if needed); ``as_of``: the
        cut-off of a read of a feature."""
        from flordb.store import io

        self.ensure_run()
        if isinstance(self.mode, RecordMode) and self.run_id is not None:
            # (a replay re-reads what the run read: nothing new to record)
            io.record(self.mode.conn, self.run_id, direction, kind, ref, checksum, nbytes,
                      as_of)

    def file_io(self, direction: Direction, path: str | os.PathLike[str]) -> None:
        """``flor.input``/``flor.output``: inputs are hashed now, outputs at the run's end."""
        self.ensure_run()
        full = Path(path).resolve()
        ref = self.project.relative(full) if self.project is not None else full.as_posix()
        if direction == "output":
            self.outputs[ref] = full
        else:
            self._record_file(direction, ref, full)

    def _record_file(self, direction: Direction, ref: str, full: Path) -> None:
        from flordb.store.io import file_digest

        found = file_digest(full)
        if found is None:
            print(f"flordb: {direction} {ref} is not a file: recorded without a checksum",
                  file=sys.stderr)
        self.record_io(direction, "file", ref, *(found or (None, None)))

    # ----------------------------------------------------------------- checkpointing
    def enroll(self, objects: dict[str, Any]) -> None:
        """Enroll objects for checkpointing at outer-loop boundaries."""
        self.ensure_run()
        clash = set(objects) & set(self.enrolled)
        if clash:
            raise BadValueError(f"flor.checkpointing: already enrolled: {', '.join(sorted(clash))}")
        kinds = {name: _state.kind_of(obj) for name, obj in objects.items()}
        self.enrolled.update({name: (obj, kinds[name]) for name, obj in objects.items()})

    def _mode(self) -> Mode:
        if self.mode is None:
            raise MisuseError("flordb: no run is active")
        return self.mode

    def _replay_mode(self) -> ReplayMode:
        from flordb.replaying import ReplayMode

        mode = self._mode()
        if not isinstance(mode, ReplayMode):
            raise MisuseError("flordb: not a replay unit's process")
        return mode

    def unenroll(self, names: Iterable[str]) -> None:
        for name in names:
            self.enrolled.pop(name, None)


def home_dir(create: bool = True) -> Path:
    """``flor.HOMEDIR``: ``$FLORDB_HOME``, else ``~/.flor`` (created, unless ``create`` is
    false)."""
    home = settings.read().home_dir
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home


def _check_name(name: Any, what: str) -> None:
    """A name must be a str that SQLite can store (valid UTF-8: no lone surrogates)."""
    if type(name) is not str:
        raise BadTypeError(f"{what} name must be a str, not {type(name).__name__}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise BadNameError(f"{what} name {name!r} is not valid UTF-8 (it holds a lone "
                           "surrogate)") from None


def _element(x: Any) -> Any:
    """A loop element's value for the ``<loop>_value`` column, or None when not a scalar."""
    v = _values.as_scalar(x)
    return v if type(v) in _SCALARS else None


def _short(v: Any, width: int = 80, quote: bool = True) -> str:
    """``v`` shortened to ``width`` characters for an echo line; strings quoted with
    ``quote`` (where several values share a line), else as ``str`` (as FlorDB prints them)."""
    text = f"{v:.6g}" if isinstance(v, float) else repr(v) if isinstance(v, str) and quote \
        else str(v)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[:width - 1] + "…"


RUNTIME = Runtime()
_MAIN_THREAD = threading.main_thread().ident
_threads = threading.local()


def current() -> Runtime:
    """The calling thread's runtime: :data:`RUNTIME` in the main thread; in any other thread a
    runtime of its own, so that what a thread logs and commits (a web app's request handler
    saving labels) is a run of its own, with its own provenance."""
    if threading.get_ident() == _MAIN_THREAD:
        return RUNTIME
    rt = getattr(_threads, "runtime", None)
    if rt is None:
        if RUNTIME.project is None and not RUNTIME.replaying:
            RUNTIME.project_root()  # located once, shared by every thread
        rt = _threads.runtime = Runtime(RUNTIME)
    return rt


class ThreadSession:
    """The :class:`~flordb.lifecycle.session.Session` the API gives lifecycle records: each
    call goes to the calling thread's runtime, so a dataset or feature made in one thread and
    used in another records into the run of the thread that uses it."""

    def writing(self) -> AbstractContextManager[tuple[sqlite3.Connection, int]]:
        return current().writing()

    def reading(self) -> AbstractContextManager[Any]:
        return current().reading()

    def project_root(self) -> Path:
        return current().project_root()

    def resolve_project(self) -> Project:
        return current().resolve_project()

    def record_io(self, direction: Direction, kind: IoKind, ref: str, checksum: str | None,
                  nbytes: int | None = None, as_of: float | None = None) -> None:
        current().record_io(direction, kind, ref, checksum, nbytes, as_of)

    def flush(self) -> None:
        current().flush()


#: The session every lifecycle call of the API uses.
SESSION = ThreadSession()
