"""What ties a runtime to its process: the exit hook, the uncaught-exception hook, SIGTERM
(deferred while a write is in progress), fork, and the flush timer thread."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class HookOwner(Protocol):
    """The runtime, as its process hooks see it."""

    main: bool
    failed: bool

    def close(self) -> None:
        """At exit: end the active run."""

    def die_by_sigterm(self) -> None:
        """End the active run as killed, then die of SIGTERM."""


class ProcessHooks:
    """The process hooks of one runtime, installed once, when its first run begins."""

    def __init__(self, owner: HookOwner) -> None:
        self.owner = owner
        self._installed = False
        self._writing = False
        self._terminate = False
        self._timer_stop: threading.Event | None = None

    def install(self) -> None:
        """``atexit`` for every runtime; for the process's own, the excepthook (marks the run
        failed) and a SIGTERM handler (where nobody else installed one)."""
        if self._installed:
            return
        self._installed = True
        atexit.register(self.owner.close)
        if not self.owner.main:
            return  # an uncaught exception ends a thread, not the process's runs
        previous_hook = sys.excepthook
        owner = self.owner

        def excepthook(kind: Any, exc: BaseException, tb: Any) -> None:
            owner.failed = True
            previous_hook(kind, exc, tb)

        sys.excepthook = excepthook
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
            signal.signal(signal.SIGTERM, self._on_sigterm)

    @staticmethod
    def after_fork(callback: Callable[[], None]) -> None:
        """Call ``callback`` in every child this process forks."""
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=callback)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """A write in progress: SIGTERM waits for its end, then ends the run."""
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
        if self._terminate:
            self.owner.die_by_sigterm()

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        if self._writing:
            self._terminate = True  # finish the write in progress first
            return
        self.owner.die_by_sigterm()

    @staticmethod
    def resend_sigterm() -> None:
        """Die of SIGTERM, as the process would have without flordb."""
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    def start_timer(self, interval: float, tick: Callable[[], None]) -> None:
        """Call ``tick`` every ``interval`` seconds from a daemon thread, until stopped."""
        self.stop_timer()
        stop = self._timer_stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval):
                tick()

        threading.Thread(target=run, name="flordb-flush-timer", daemon=True).start()

    def stop_timer(self) -> None:
        """Stop the flush timer, if one runs."""
        if self._timer_stop is not None:
            self._timer_stop.set()
            self._timer_stop = None
