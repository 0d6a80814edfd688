"""What a recording prints to the terminal: args and top-level values as FlorDB prints them,
rate-limited, and a progress line per outer-loop flush."""

from __future__ import annotations

import sys
import time
from typing import Any

from flordb.loops import Frame

#: Args and top-level values echoed to the terminal per second, at most.
ECHO_PER_SECOND = 20


class Echo:
    """The terminal echo of one thread's runs (``FLORDB_ECHO``)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._window = (0, 0, 0)  # (second, lines shown in it, values not shown)

    def value(self, name: str, value: Any) -> None:
        """``name: value`` for an arg or a top-level log; at most ``ECHO_PER_SECOND`` lines a
        second, the rest counted in the next line shown."""
        if not self.enabled:
            return
        now = int(time.monotonic())
        second, shown, held = self._window
        if now != second:
            second, shown = now, 0
        if shown >= ECHO_PER_SECOND:
            self._window = (second, shown, held + 1)
            return
        more = f" ({held:,} values not shown)" if held else ""
        print(f"flordb: {name}: {short(value, quote=False)}{more}", file=sys.stderr)
        self._window = (second, shown + 1, 0)

    def progress(self, fr: Frame, last: dict[str, Any]) -> None:
        """``loop i/n name=value ...``: where an outer loop is, with its latest values."""
        if not self.enabled or not last:
            return
        of = f"/{fr.total}" if fr.total is not None else ""
        shown = " ".join(f"{k}={short(v)}" for k, v in last.items())
        print(f"flordb: {fr.name} {fr.i + 1}{of} {shown}", file=sys.stderr)

    def line(self, text: str) -> None:
        """One line of news (a run that ended), when echo is on."""
        if self.enabled:
            print(f"flordb: {text}", file=sys.stderr)


def short(v: Any, width: int = 80, quote: bool = True) -> str:
    """``v`` shortened to ``width`` characters for an echo line; strings quoted with
    ``quote`` (where several values share a line), else as ``str`` (as FlorDB prints them)."""
    text = f"{v:.6g}" if isinstance(v, float) else repr(v) if isinstance(v, str) and quote \
        else str(v)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[:width - 1] + "…"
