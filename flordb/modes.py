"""What recording and replaying do differently, as one small protocol.

The runtime runs a script's ``flor`` calls the same way in both modes; a :class:`Mode` answers
the questions where they differ: where a run comes from (a new row, or the recorded run a
replay unit fills), what ``flor.arg`` returns (``--kwargs`` or the recorded value), which id a
loop instance gets (the next one, or the recorded one), what a flush writes (everything, or
the unit's names in its window) and how a run ends. :class:`RecordMode` is the recording one;
:class:`flordb.replaying.ReplayMode` the replaying one. The runtime chooses once per process,
from ``$FLORDB_REPLAY``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from flordb import kwargs as _kwargs
from flordb import settings
from flordb.store.writer import Batch, RunWriter, Status

if TYPE_CHECKING:
    from flordb.loops import Frame
    from flordb.project import Project


class Mode(Protocol):
    """The part of a run that recording and replaying do differently."""

    #: Replaying re-executes a recorded run: lifecycle records, inputs and outputs, checkpoint
    #: files and the run's status are the recording's and are left alone.
    replaying: bool

    def begin(self, project: Project) -> tuple[int, str | None]:
        """Start (or attach to) a run; returns its ``run_id`` and ``tstamp``."""

    def arg(self, name: str, default: Any) -> Any:
        """The value of ``flor.arg(name, default)``."""

    def loop_id(self, parent: Frame, name: str) -> int:
        """The id of the loop instance ``name`` being entered under ``parent``."""

    def flush(self, batch: Batch) -> None:
        """Write ``batch`` (or the part of it this mode keeps) in one transaction."""

    def end(self, status: Status) -> int:
        """End the run with ``status``; returns the number of values it holds."""

    def close(self) -> None:
        """Release the store connection (at exit)."""


class RecordMode:
    """Recording: a new run row per run, ``--kwargs`` for args, sequential loop ids."""

    replaying = False

    def __init__(self, root: Path, kwargs: dict[str, str], kwargs_read: set[str],
                 argv: list[str] | None = None) -> None:
        self.writer = RunWriter(root)
        self.kwargs = kwargs
        self.kwargs_read = kwargs_read
        self.argv = argv  # the command as typed, --kwargs included (default: sys.argv)
        self.next_loop_id = 1

    @property
    def conn(self) -> Any:
        """The store connection of this process's runs."""
        return self.writer.conn

    def begin(self, project: Project) -> tuple[int, str | None]:
        from flordb.project import script_name

        self.next_loop_id = 1
        return self.writer.begin(project.projid, script_name(project),
                                 list(self.argv or sys.argv), os.getcwd(),
                                 settings.read().parent_run)

    def arg(self, name: str, default: Any) -> Any:
        return kwarg(self.kwargs, self.kwargs_read, name, default)

    def loop_id(self, parent: Frame, name: str) -> int:
        loop_id = self.next_loop_id
        self.next_loop_id += 1
        return loop_id

    def flush(self, batch: Batch) -> None:
        self.writer.flush(batch)

    def end(self, status: Status) -> int:
        return self.writer.end(status)

    def close(self) -> None:
        self.writer.close()


def kwarg(kwargs: dict[str, str], read: set[str], name: str, default: Any) -> Any:
    """``--kwargs name=...`` cast to the type of ``default`` (noted as read), else
    ``default``."""
    if name in kwargs:
        read.add(name)
        return _kwargs.cast(name, kwargs[name], default)
    return default
