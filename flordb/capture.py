"""What a run printed and logged, kept with the run (``run_output``).

While a run records, ``sys.stdout`` and ``sys.stderr`` are wrapped so that what is written
still reaches the terminal unchanged and is also kept, line by line, and a handler on the root
``logging`` logger keeps each record (level, logger, message). Lines are buffered and written
with the run's values at each flush. A run keeps at most ``$FLORDB_CAPTURE_MB`` (default 10 MB)
of output; past that one line says how much more was left out. ``FLORDB_CAPTURE=0`` turns
capturing off.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, TextIO

from flordb import settings

#: (seq, time, stream, level, logger, text): one line of output or one logging record.
Line = tuple[int, float, str, "str | None", "str | None", str]


def enabled() -> bool:
    """Whether runs capture their output (``FLORDB_CAPTURE``, default on)."""
    return settings.read().capture


class Capture:
    """The output of one run, from :meth:`start` to :meth:`stop`."""

    def __init__(self) -> None:
        self.lines: list[Line] = []
        self.seq = 0
        self.kept = 0
        self.left_out = 0
        self.limit = int(settings.read().capture_mb * 2**20)
        self._lock = threading.Lock()
        self._partial: dict[str, str] = {"stdout": "", "stderr": ""}
        self._streams: tuple[TextIO, TextIO] | None = None
        self._handler: logging.Handler | None = None

    def start(self) -> None:
        """Wrap the standard streams and listen to the root logger."""
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout = _Tee(sys.stdout, self, "stdout")
        sys.stderr = _Tee(sys.stderr, self, "stderr")
        self._handler = _Handler(self)
        logging.getLogger().addHandler(self._handler)

    def stop(self) -> None:
        """Put the streams back (where nobody replaced them since) and stop listening."""
        if self._streams is not None:
            out, err = self._streams
            if isinstance(sys.stdout, _Tee) and sys.stdout.capture is self:
                sys.stdout = out
            if isinstance(sys.stderr, _Tee) and sys.stderr.capture is self:
                sys.stderr = err
            self._streams = None
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None
        for stream in ("stdout", "stderr"):
            if self._partial[stream]:  # a last line without its newline
                self.write(stream, "\n")

    def write(self, stream: str, text: str) -> None:
        """Keep ``text`` written to ``stream``, one line per row."""
        with self._lock:
            pending = self._partial[stream] + text
            *done, self._partial[stream] = pending.split("\n")
            for line in done:
                self._keep(stream, None, None, line)

    def record(self, level: str, logger: str, message: str) -> None:
        with self._lock:
            self._keep("logging", level, logger, message)

    def _keep(self, stream: str, level: str | None, logger: str | None, text: str) -> None:
        size = len(text) + 1
        if self.kept + size > self.limit:
            self.left_out += size
            return
        self.kept += size
        self.seq += 1
        self.lines.append((self.seq, time.time(), stream, level, logger, text))

    def take(self) -> list[Line]:
        """The lines kept since the last call (and, at the end, how much was left out)."""
        with self._lock:
            lines, self.lines = self.lines, []
            if self.left_out and self._streams is None:
                self.seq += 1
                lines.append((self.seq, time.time(), "stderr", None, "flordb",
                              f"[{self.left_out:,} more bytes of output were not kept: "
                              f"{settings.name('capture_mb')}={self.limit / 2**20:g}]"))
                self.left_out = 0
            return lines


class _Tee:
    """A text stream that writes through to ``inner`` and keeps a copy."""

    def __init__(self, inner: TextIO, capture: Capture, name: str) -> None:
        self.inner = inner
        self.capture = capture
        self.name = name

    def write(self, text: str) -> int:
        n = self.inner.write(text)
        if isinstance(text, str):
            self.capture.write(self.name, text)
        return n

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding...
        return getattr(self.inner, name)


class _Handler(logging.Handler):
    """Keeps each logging record of the run: level, logger name, formatted message."""

    def __init__(self, capture: Capture) -> None:
        super().__init__(logging.NOTSET)
        self.capture = capture

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.capture.record(record.levelname, record.name, record.getMessage())
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)
