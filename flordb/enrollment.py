"""The objects enrolled with ``flor.checkpointing`` and the checkpointer of the active run: what
the runtime does at an outermost loop boundary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flordb import checkpoint
from flordb import state as _state
from flordb.errors import BadValueError
from flordb.loops import Frame

if TYPE_CHECKING:
    from flordb.project import Project


class Enrollment:
    """Enrolled objects (name -> (object, kind)) and the run's checkpointer, made at the
    first boundary that has something to checkpoint."""

    def __init__(self, epsilon: float) -> None:
        self.objects: dict[str, tuple[Any, str]] = {}
        self.epsilon = epsilon
        self.checkpointer: checkpoint.Checkpointer | None = None

    def enroll(self, objects: dict[str, Any]) -> None:
        """Enroll objects for checkpointing at outer-loop boundaries."""
        clash = set(objects) & set(self.objects)
        if clash:
            raise BadValueError(f"flor.checkpointing: already enrolled: "
                                f"{', '.join(sorted(clash))}")
        kinds = {name: _state.kind_of(obj) for name, obj in objects.items()}
        self.objects.update({name: (obj, kinds[name]) for name, obj in objects.items()})

    def unenroll(self, names: Any) -> None:
        """Stop checkpointing these enrolled objects."""
        for name in names:
            self.objects.pop(name, None)

    def set_epsilon(self, epsilon: float) -> None:
        """The overhead bound, for this run's checkpointer too."""
        self.epsilon = epsilon
        if self.checkpointer is not None:
            self.checkpointer.epsilon = epsilon

    def boundary(self, project: Project, tstamp: str | None, run_id: int, fr: Frame,
                 done: int) -> None:
        """Outermost iteration ``done - 1`` of ``fr`` ended: checkpoint within the budget."""
        if self.checkpointer is None:
            self.checkpointer = checkpoint.Checkpointer(project.root, self.epsilon,
                                                        files=_flor_files(project, tstamp, fr))
        self.checkpointer.boundary(run_id, fr, done, self.objects)

    def finish(self) -> None:
        """Wait for the run's checkpoint writes (raising the first error)."""
        if self.checkpointer is not None:
            self.checkpointer.finish()

    def end_run(self) -> None:
        """The next run gets a checkpointer of its own."""
        self.checkpointer = None

    def loop_stats(self) -> dict[str, checkpoint.LoopStats]:
        """The checkpointer's statistics per outer loop name."""
        if self.checkpointer is None:
            return {}
        return {s.name: s for s in sorted(self.checkpointer.loops.values(),
                                          key=lambda x: x.loop_id)}


def _flor_files(project: Project, tstamp: str | None, fr: Frame) -> checkpoint.FlorFiles | None:
    """Where FlorDB scripts look for this run's checkpoint files (``flor.HOMEDIR``)."""
    if tstamp is None:
        return None
    from flordb.project import home_dir
    from flordb.store.db import store_dir

    start, step = fr.range or (None, None)
    return checkpoint.FlorFiles(store_dir(project.root), home_dir(create=False), project.projid,
                                tstamp, fr.name, start, step)
