"""Loop context: the frames of active ``flor.loop`` instances and their unflushed series.

Loop context is a chain of :class:`Frame` objects, one per active ``flor.loop`` entry (a *loop
instance*), under a top frame for the run's top level. Hot numeric values go to per-frame,
per-name typed arrays (:class:`Series`). :class:`LoopHost` is what a mode's loop may do with
the runtime: enter and exit a loop instance, make a frame current, end an outer iteration,
flush; :class:`RunHost` is the runtime as the rest of a mode sees it.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from flordb.project import Project
    from flordb.recorder import Recorder
    from flordb.store.writer import Status


class Series:
    """The unflushed values of one name in one loop instance."""

    __slots__ = ("name", "typecode", "iters", "vals")

    def __init__(self, name: str, typecode: str) -> None:
        self.name = name
        self.typecode = typecode
        self.iters = array("q")
        self.vals = array(typecode)


class Frame:
    """One loop instance (or, with ``loop_id == 0``, the run's top level)."""

    __slots__ = ("loop_id", "name", "parent", "depth", "i", "floats", "ints", "values",
                 "values_from", "total", "t0", "range")

    def __init__(self, loop_id: int, name: str, parent: Frame | None, depth: int) -> None:
        self.loop_id = loop_id
        self.name = name
        self.parent = parent
        self.depth = depth
        self.i = 0  # 0-based index of the current iteration
        self.floats: dict[str, Series] = {}
        self.ints: dict[str, Series] = {}
        self.values: list[Any] | None = None  # element values not yet flushed
        self.values_from = 0  # iteration index of values[0]
        self.total: int | None = None
        self.t0 = time.perf_counter()
        self.range: tuple[int, int] | None = None  # (start, step) when iterating a range


class LoopHost(Protocol):
    """The runtime as a mode's loop sees it."""

    recorder: Recorder
    enrolled: dict[str, tuple[Any, str]]

    def enter_loop(self, name: str, iterable: Iterable[Any]) -> Frame:
        """Open a loop instance under the current frame and make it current."""

    def exit_loop(self, fr: Frame, n: int) -> None:
        """Close ``fr`` after ``n`` iterations; the context returns to its parent."""

    def outer_boundary(self, fr: Frame, done: int) -> None:
        """Outermost iteration ``done - 1`` of ``fr`` ended: checkpoint, flush when due."""

    def flush(self) -> None:
        """Write every buffered value of the active run."""


class RunHost(LoopHost, Protocol):
    """The runtime as a mode sees it."""

    main: bool
    failed: bool
    run_id: int | None
    tstamp: str | None
    args: dict[str, Any]
    sticky_args: dict[str, Any]

    def resolve_project(self) -> Project:
        """The project this process records."""

    def end_run(self, status: Status) -> None:
        """End the active run with ``status``."""
