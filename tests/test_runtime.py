"""The runtime in-process: a fake mode collects what a real one would write, so logging,
loops, flushing and commit are checked without a store or a subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from flordb.errors import BadNameError, MisuseError
from flordb.modes import record_loop
from flordb.project import Project
from flordb.recorder import CHUNK, check_name
from flordb.runtime import RUNTIME, Runtime
from flordb.store.writer import Batch


class FakeMode:
    """A :class:`~flordb.modes.Mode` that keeps every batch in memory."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.ended: list[str] = []
        self.next_loop_id = 1
        self.runs = 0

    def begin(self, project: Project) -> tuple[int, str | None]:
        self.runs += 1
        self.next_loop_id = 1
        return self.runs, f"t{self.runs}"

    def on_begin(self, host: Any) -> None:
        pass

    def arg(self, name: str, default: Any) -> Any:
        return default

    def loop_id(self, parent: Any, name: str) -> int:
        self.next_loop_id += 1
        return self.next_loop_id - 1

    def loop(self, host: Any, name: str, iterable: Any) -> Any:
        return record_loop(host, name, iterable)

    def flush(self, batch: Batch) -> None:
        if batch:
            self.batches.append(batch)

    def commit(self, host: Any) -> None:
        pass

    def end_cell(self, host: Any, failed: bool) -> None:
        host.end_run("failed" if failed else "completed")

    def ending(self) -> None:
        pass

    def end(self, status: str) -> int:
        self.ended.append(status)
        return 0

    def at_exit(self, host: Any) -> None:
        if host.run_id is not None:
            host.end_run("completed")

    def on_store_fault(self, exc: BaseException) -> None:
        raise exc

    @contextmanager
    def transaction(self, conn: Any) -> Iterator[None]:
        yield

    def record_io(self, *args: Any) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[Runtime, FakeMode]]:
    rt = Runtime(process=RUNTIME)
    rt.project = Project(tmp_path, "p", in_git=False)
    rt.echo.enabled = False
    mode = FakeMode()
    rt.mode = mode
    yield rt, mode
    rt.hooks.stop_timer()
    rt.mode = None  # its atexit hook then does nothing


def values(mode: FakeMode) -> dict[str, list[float]]:
    from array import array

    out: dict[str, list[float]] = {}
    for batch in mode.batches:
        for chunk in batch.chunks:
            vals = array("d" if chunk.dtype == "f8" else "q")
            vals.frombytes(chunk.vals)
            out.setdefault(chunk.name, []).extend(vals)
        for record in batch.records:
            out.setdefault(record.name, []).append(record.value)
    return out


def test_log_loop_and_commit_go_through_the_mode_in_process(fake):
    rt, mode = fake
    for epoch in rt.loop("epoch", range(3)):
        for step in rt.loop("step", range(2)):
            rt.log_slow("loss", float(epoch * 10 + step))
        rt.log_slow("note", f"epoch {epoch}")
    assert rt.arg("lr", 0.1) == 0.1
    rt.commit()
    assert mode.ended == ["completed"] and rt.run_id is None
    got = values(mode)
    assert got["loss"] == [0.0, 1.0, 10.0, 11.0, 20.0, 21.0]
    assert got["note"] == ["epoch 0", "epoch 1", "epoch 2"] and got["lr"] == [0.1]
    new = [row for b in mode.batches for row in b.loops_new]
    assert [(r[0], r[3], r[4]) for r in new] == [(1, "epoch", 1), (2, "step", 2), (3, "step", 2),
                                                 (4, "step", 2)]
    assert sorted(n for b in mode.batches for n, _ in b.loops_ended) == [2, 2, 2, 3]


def test_each_outer_loop_end_flushes_and_a_second_run_starts_afresh(fake):
    rt, mode = fake
    for _ in rt.loop("epoch", range(2)):
        rt.log_slow("x", 1)
    assert len(mode.batches) == 1  # the outer loop ended: written
    rt.commit()
    rt.log_slow("y", 2.0)
    assert rt.run_id == 2 and rt.recorder.frame is rt.recorder.top
    rt.close()
    assert mode.ended == ["completed", "completed"] and values(mode)["y"] == [2.0]


def test_a_full_series_is_sealed_and_the_batch_flushed_when_too_much_is_pending(fake):
    rt, mode = fake
    rec = rt.recorder
    for i in range(CHUNK + 1):
        rt.log_slow("v", float(i))
    assert not mode.batches  # sealed, pending: a chunk is not a flush
    assert len(rec.pending.chunks) == 1 and rec.pending.chunks[0].n == CHUNK
    rt.flush()
    assert values(mode)["v"] == [float(i) for i in range(CHUNK + 1)]


def test_commit_inside_a_loop_is_refused_and_the_context_stays_right(fake):
    rt, mode = fake
    with pytest.raises(MisuseError, match="inside flor.loop"):
        for _ in rt.loop("epoch", range(3)):
            rt.commit()
    assert rt.recorder.frame is rt.recorder.top and not rt.recorder.live


def test_a_store_fault_the_mode_does_not_allow_is_raised(fake):
    rt, mode = fake
    rt.ensure_run()
    rt.log_slow("x", "text")

    def fail(batch: Batch) -> None:
        raise OSError(28, "No space left on device")

    mode.flush = fail  # type: ignore[method-assign]
    with pytest.raises(OSError):
        rt.flush()
    assert rt.recorder.pending.records  # kept for a later try


def test_names_must_be_storable():
    check_name("loss", "flor.log")
    with pytest.raises(TypeError, match="must be a str"):
        check_name(3, "flor.log")
    with pytest.raises(BadNameError, match="lone surrogate"):
        check_name("bad\udcff", "flor.log")


def test_a_thread_runtime_shares_the_kwargs_and_project():
    rt = Runtime(process=RUNTIME)
    assert rt.kwargs is RUNTIME.kwargs and rt.kwargs_read is RUNTIME.kwargs_read
    assert not rt.main and rt.mode is None
