"""The runtime: the one object that holds a recording process's state, composed of parts.

A process records at most one run at a time. The run starts lazily at the first ``log``,
``arg``, ``loop`` or ``checkpointing`` and ends at ``commit`` or at exit; reads start none.
What recording and replaying do differently is the run's :class:`~flordb.modes.Mode`, chosen
once per process by :meth:`Runtime._choose_mode`. The buffers are a
:class:`~flordb.recorder.Recorder` (no threads, no I/O), the process hooks and the flush timer
are :class:`~flordb.hooks.ProcessHooks`, the terminal echo is :class:`~flordb.echo.Echo`; the
runtime drives them and writes through the mode: a batch is written in one transaction when
the flush timer has fired at a loop boundary, when too many values are pending, when an outer
loop ends, at ``commit`` and at exit. Memory therefore stays flat in the number of values.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flordb import settings
from flordb import values as _values
from flordb.echo import Echo
from flordb.enrollment import Enrollment
from flordb.errors import MisuseError
from flordb.hooks import ProcessHooks
from flordb.loops import Frame
from flordb.modes import Mode, kwarg, record_loop
from flordb.recorder import CHUNK, Recorder, check_name
from flordb.sessions import RunSession, ThreadSession
from flordb.store.db import DatabaseError
from flordb.store.redact import REDACTED, is_secret
from flordb.store.writer import Status

if TYPE_CHECKING:
    from flordb.project import Project

__all__ = ["CHUNK", "RUNTIME", "SESSION", "Runtime", "current"]


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
        self.project: Project | None = process.project if process else None
        self.main = process is None
        env = settings.read()
        self.echo = Echo(env.echo)
        self.flush_interval = env.flush_s
        self._replay_unit = env.replay_unit  # read by the mode factory alone
        self.checkpoints = Enrollment(env.epsilon)
        self.enrolled = self.checkpoints.objects
        self.sticky_args: dict[str, Any] = {}  # in a notebook: args carried into later runs
        self.mode: Mode | None = None  # chosen when the process's first run begins
        self.stopped = False  # the store could not be written: recording stopped (said once)
        self.recorder = Recorder(on_full=self.flush)
        self.hooks = ProcessHooks(self)
        self.session: RunSession = RunSession(self)
        self._inherited: list[Any] = []
        self._reset_run()
        if self.main:
            self.hooks.after_fork(self._after_fork)

    def _reset_run(self) -> None:
        self.run_id: int | None = None
        self.tstamp: str | None = None
        self.recorder.reset()
        self.session.outputs.clear()
        self.failed = False
        self.args: dict[str, Any] = {}

    # ----------------------------------------------------------------- the project and mode
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

    def _choose_mode(self, p: Project) -> Mode:
        """The mode factory: a replay unit's child replays, every other process records."""
        if self._replay_unit is not None:
            from flordb.errors import ReplayUnitError
            from flordb.replaying import ReplayMode

            try:
                return ReplayMode(p.root, self._replay_unit)
            except (DatabaseError, OSError) as exc:  # a unit must reach its store, or fail
                raise ReplayUnitError(f"replay unit {self._replay_unit} cannot read the "
                                      f"project's store: {exc}") from exc
        from flordb.modes import RecordMode

        if not p.in_git:
            print(f"flordb: {p.root} is not inside a git repository: runs are recorded "
                  "without code snapshots, and replay will need one.", file=sys.stderr)
        return RecordMode(p.root, self.kwargs, self.kwargs_read, self.argv)

    # ----------------------------------------------------------------- run lifecycle
    def ensure_run(self) -> None:
        """Start a run if none is active."""
        if self.run_id is None and not self.stopped:
            p = self.resolve_project()
            try:
                if self.mode is None:
                    self.mode = self._choose_mode(p)
                self.run_id, self.tstamp = self.mode.begin(p)
            except (DatabaseError, OSError) as exc:
                self._stop_if_fault(exc)
                return
            self.hooks.start_timer(self.flush_interval, self._flush_soon)
            self.hooks.install()
            self.mode.on_begin(self)

    def _flush_soon(self) -> None:
        self.recorder.flush_due = True

    def _after_fork(self) -> None:
        # A forked child (e.g. a data-loader worker) must not write its parent's buffers
        # again; it starts with no run, and a run of its own if it logs. SQLite connections
        # must not be used across fork, so the inherited one is kept open, unused.
        self._inherited.append((self.mode, self.checkpoints.checkpointer))
        self.mode = None
        self.checkpoints.end_run()  # the parent's checkpointer (its connection, its thread)
        self._reset_run()
        self.enrolled.clear()

    def commit(self) -> None:
        """End the active run durably; the next logging call starts a new run."""
        if self.recorder.live:
            names = ", ".join(f.name for f in self.recorder.live.values())
            raise MisuseError(f"flor.commit() inside flor.loop ({names}): commit between "
                              "loops, where no loop iteration is in progress")
        if self.run_id is not None and self.mode is not None:
            self.mode.commit(self)
            self.end_run("completed")

    def end_cell(self, failed: bool) -> None:
        """After a notebook cell: end the run it logged into (none while a loop is open)."""
        if self.run_id is not None and self.mode is not None and not self.recorder.live:
            self.mode.end_cell(self, failed)

    def close(self) -> None:
        """At exit: end the active run (``failed`` after an uncaught exception)."""
        if self.mode is not None:
            self.mode.at_exit(self)

    def end_run(self, status: Status) -> None:
        """End the active run with ``status``: write everything, then the run's end."""
        mode = self.mode
        if mode is None:
            raise MisuseError("flordb: no run is active")
        self.recorder.retire_all()
        try:
            self.checkpoints.finish()
        except (DatabaseError, OSError, RuntimeError) as exc:
            self._stop_if_fault(exc)
        mode.ending()
        self.flush()
        if not self.stopped:
            self.session.record_outputs()
        self.hooks.stop_timer()
        try:
            n = mode.end("failed" if self.stopped else status)
        except (DatabaseError, OSError):
            if not self.stopped:
                raise  # else: the line printed when recording stopped says why
        else:
            if not self.stopped:
                self.echo.line(f"run {self.tstamp} {status}: {n:,} values")
        self.checkpoints.end_run()
        self._reset_run()

    def die_by_sigterm(self) -> None:
        """End the active run as killed, then die of SIGTERM."""
        if self.run_id is not None:
            self.end_run("killed")
        self.hooks.resend_sigterm()

    # ----------------------------------------------------------------- logging
    def log_slow(self, name: str, value: Any) -> Any:
        """Everything ``flordb.log`` does not do inline: first values, non-floats, checks."""
        check_name(name, "flor.log")
        self.ensure_run()
        rec = self.recorder
        fr = rec.frame
        v = _values.as_scalar(value)
        rec.add(fr, name, v)
        if fr is rec.top:
            self.echo.value(name, v)
        if rec.flush_due and not rec.live:
            self.flush()
        return value

    def arg(self, name: str, default: Any) -> Any:
        """``flor.arg``: replayed value, else ``--kwargs`` value cast, else ``default``."""
        check_name(name, "flor.arg")
        self.ensure_run()
        if name in self.args:
            return self.args[name]
        if self.mode is None:  # the store cannot be written: --kwargs still apply
            value = kwarg(self.kwargs, self.kwargs_read, name, default)
        else:
            value = self.mode.arg(name, default)
        self.args[name] = value
        shown = REDACTED if is_secret(name) else value
        self.recorder.add(self.recorder.top, name, shown, "arg")
        self.echo.value(name, shown)
        return value

    # ----------------------------------------------------------------- loops
    def loop(self, name: str, iterable: Iterable[Any]) -> Generator[Any, None, None]:
        """Generator behind ``flor.loop``; see its docstring."""
        self.ensure_run()
        return (self.mode.loop if self.mode is not None else record_loop)(self, name, iterable)

    def enter_loop(self, name: str, iterable: Iterable[Any]) -> Frame:
        """Open a loop instance under the current frame and make it current."""
        check_name(name, "flor.loop")
        self.ensure_run()
        rec = self.recorder
        loop_id = self.mode.loop_id(rec.frame, name) if self.mode is not None \
            else len(rec.live) + 1  # the store cannot be written: any distinct id will do
        return rec.enter_loop(name, iterable, loop_id)

    def exit_loop(self, fr: Frame, n: int) -> None:
        """Close ``fr`` after ``n`` iterations; the context returns to its parent."""
        if self.recorder.exit_loop(fr, n):
            self.flush()

    def outer_boundary(self, fr: Frame, done: int) -> None:
        """Outermost iteration ``done - 1`` of ``fr`` ended: checkpoint the enrolled objects
        (within the overhead budget), flush when the timer says so."""
        if self.enrolled and not self.stopped and self.run_id is not None:
            try:
                self.checkpoints.boundary(self.resolve_project(), self.tstamp, self.run_id,
                                          fr, done)
            except (DatabaseError, OSError, RuntimeError) as exc:
                self._stop_if_fault(exc)
        if self.recorder.flush_due:
            self.echo.progress(fr, self.recorder.last_values(fr))
            self.flush()

    # ----------------------------------------------------------------- flushing
    def flush(self) -> None:
        """Write every buffered value of the active run in one transaction."""
        rec = self.recorder
        if self.stopped:
            rec.drop_pending()
            return
        if self.run_id is None or self.mode is None:
            rec.flush_due = False
            return
        with self.hooks.writing():
            rec.pending.timing = rec.timing_rows(self.checkpoints.loop_stats())
            batch = rec.take_batch()
            try:
                self.mode.flush(batch)
            except (DatabaseError, OSError) as exc:
                rec.put_back(batch)  # kept if this is a bug, raised below
                self._stop_if_fault(exc)
            except BaseException:
                rec.put_back(batch)  # keep the values for a later try or the error
                raise

    def _stop_if_fault(self, exc: BaseException) -> None:
        """When ``exc`` is the store failing (full disk, read-only, damaged), stop recording
        with one line and let the script go on (if the mode allows); a bug is raised."""
        from flordb.store.db import store_dir, store_fault

        cause = store_fault(exc)
        if cause is None:
            raise exc
        if self.mode is not None:
            self.mode.on_store_fault(exc)
        if not self.stopped:
            self.stopped = True
            where = store_dir(self.project.root) if self.project is not None else "the store"
            print(f"flordb: recording stopped: cannot write to {where}: {cause}. What was "
                  f"written before is kept; values logged from now on are not stored.",
                  file=sys.stderr)
        self.recorder.drop_pending()

    def enroll(self, objects: dict[str, Any]) -> None:
        """Enroll objects for checkpointing at outer-loop boundaries."""
        self.ensure_run()
        self.checkpoints.enroll(objects)



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
        if RUNTIME.project is None:
            RUNTIME.project_root()  # located once, shared by every thread
        rt = _threads.runtime = Runtime(RUNTIME)
    return rt


#: The session every lifecycle call of the API uses.
SESSION = ThreadSession(lambda: current().session)
