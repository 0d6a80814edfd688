"""Carry out a replay plan: materialize versions, run units in parallel, finish each unit.

Each unit runs in its own temporary directory holding the files of its run's code snapshot
(exported from git with ``git archive``: nothing is registered in the user's repository, so
even a crash leaves no worktree behind), with the patched script written over the old one and
files the snapshot lacks (ignored data, large files) reachable from the project: small files
are copied, larger files and directories linked. The child is ``sys.executable`` running the
script with the recorded arguments, from the recorded working directory's counterpart, with
``$FLORDB_REPLAY`` naming its unit and ``$FLORDB_ROOT`` the project, whose store it writes.

Units run on an :class:`Executor`; :class:`LocalExecutor` is a pool of ``workers`` child
processes. A distributed engine implements the same two methods.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from flordb import settings
from flordb.hindsight import crosscheck
from flordb.hindsight.crosscheck import same
from flordb.hindsight.cst_tree import encode_source
from flordb.hindsight.plan import Plan, RunPlan, VerifyMode, make_plan
from flordb.store import history, replays
from flordb.store.handle import Store
from flordb.store.replays import Directive

#: Untracked files up to this size are copied into a unit's directory; larger ones are linked.
COPY_MAX_BYTES = 1 << 20
_TAIL_LINES = 20


@dataclass
class Job:
    """One child process to run: what a distributed executor ships to a worker."""

    unit_id: int
    argv: list[str]
    cwd: str
    env: dict[str, str]


@dataclass
class JobResult:
    unit_id: int
    returncode: int
    seconds: float
    tail: str  # the last lines of the child's stdout and stderr


class Executor(Protocol):
    """Runs jobs; a cluster engine can implement this interface."""

    def submit(self, job: Job) -> Future[JobResult]: ...

    def shutdown(self, cancel: bool) -> None: ...


class LocalExecutor:
    """A pool of ``workers`` child processes on this machine."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flordb-replay")
        self._procs: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._cancelled = False

    def submit(self, job: Job) -> Future[JobResult]:
        return self._pool.submit(self._run, job)

    def _run(self, job: Job) -> JobResult:
        t = time.perf_counter()
        with tempfile.TemporaryFile() as out:
            with self._lock:
                if self._cancelled:
                    return JobResult(job.unit_id, -signal.SIGTERM, 0.0, "cancelled")
                proc = subprocess.Popen(job.argv, cwd=job.cwd, env=job.env, stdout=out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
                self._procs[job.unit_id] = proc
            try:
                code = proc.wait()
            finally:
                with self._lock:
                    self._procs.pop(job.unit_id, None)
            out.seek(0)
            tail = b"\n".join(out.read().splitlines()[-_TAIL_LINES:]).decode(errors="replace")
        return JobResult(job.unit_id, code, time.perf_counter() - t, tail)

    def shutdown(self, cancel: bool) -> None:
        """Wait for running jobs; with ``cancel``, first stop every child process group."""
        if cancel:
            with self._lock:
                self._cancelled = True
                procs = list(self._procs.values())
            for p in procs:
                _signal_group(p, signal.SIGTERM)
            deadline = time.monotonic() + 5
            for p in procs:
                try:
                    p.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal_group(p, signal.SIGKILL)
        self._pool.shutdown(wait=True, cancel_futures=cancel)


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass


@dataclass
class Divergence:
    """The comparison of one recorded name's re-executed values with the recording."""

    name: str
    compared: int
    differing: int
    max_abs_diff: float | None
    example: str


@dataclass
class RunOutcome:
    run_id: int
    tstamp: str
    commit: str
    units_done: int = 0
    failures: list[str] = field(default_factory=list)
    compared: int = 0
    divergences: list[Divergence] = field(default_factory=list)
    cross_check: str = ""  # what the cross-check found, when the run had one
    cross_check_error: str = ""  # how its unit failed, when it did
    #: Boundaries where the units' live state equalled the recording's checkpoints.
    recording_agreed: int = 0
    #: Where a unit's live state first differed from the recording, when one did.
    recording_diverged: str = ""
    fell_back: str = ""  # why the run was executed again from the start, when it was
    not_written: str = ""  # why none of the run's new values were kept, when so


@dataclass
class Report:
    """What a replay did: per run, units done and failed, its checks against the recording,
    and the fidelity of re-executed logs."""

    plan: Plan
    runs: list[RunOutcome]
    seconds: float

    @property
    def ok(self) -> bool:
        """Whether every planned value was written: no unit failed, no run left unwritten."""
        return all(not r.failures and not r.not_written for r in self.runs)

    def render(self) -> str:
        lines = [f"replay finished in {self.seconds:.1f}s"]
        for r in self.runs:
            status = "ok" if not r.failures else f"{len(r.failures)} unit(s) failed"
            if r.not_written:
                status = "NOT WRITTEN"
            lines.append(f"  run {r.tstamp} (version {r.commit[:10]}): {r.units_done} unit(s) "
                         f"done, {status}; {r.compared} re-executed values compared, "
                         f"{sum(d.differing for d in r.divergences)} differ")
            if r.cross_check:
                lines.append(f"    {r.cross_check}")
            if r.recording_agreed:
                lines.append(f"    state equals the recording's checkpoint at "
                             f"{r.recording_agreed} boundar"
                             f"{'y' if r.recording_agreed == 1 else 'ies'}")
            if r.recording_diverged:
                lines.append(f"    {r.recording_diverged}")
            if r.fell_back:
                lines.append(f"    fell back to executing every iteration from the start: "
                             f"{r.fell_back}")
            if r.not_written:
                lines.append(f"    no value written: {r.not_written}")
            for d in r.divergences:
                diff = f", max |diff| {d.max_abs_diff:.3g}" if d.max_abs_diff is not None else ""
                lines.append(f"    DIVERGES {d.name}: {d.differing}/{d.compared}{diff}; "
                             f"{d.example}")
            for f in r.failures:
                lines.append("    FAILED " + f.replace("\n", "\n      "))
        return "\n".join(lines)


def replay(root: Path, names: list[str], where: str | None = None,
           workers: int | None = None, dry_run: bool = False,
           executor: Executor | None = None,
           progress: bool = True, verify: VerifyMode = "args") -> Plan | Report:
    """Back-fill ``names`` into the past runs of the project at ``root``; see
    :func:`flordb.replay`."""
    plan = make_plan(root, names, where, workers, verify)
    if dry_run:
        return plan
    if not plan.units:
        return Report(plan, [], 0.0)
    return execute(root, plan, executor, progress)


#: A unit that ran to its end: the unit, its run, its seconds, and whether its live state
#: diverged from the recording.
_Finished = tuple[Directive, RunPlan, float]


def execute(root: Path, plan: Plan, executor: Executor | None = None,
            progress: bool = True) -> Report:
    """Run ``plan``'s units and judge each run before any of its values become visible.

    A run's values are kept only when its units' live state equalled the recording's
    checkpoints at every boundary they reached by execution, its re-executed recorded values
    equal the recorded ones, and its version's cross-check (restored state against executed
    state) did not disagree. Otherwise its values are dropped; a run whose values came from
    restored state is executed again from the start, nothing skipped or restored, and judged
    the same way; a run executed from the start that still differs gets no value, and the
    report says why.
    """
    t0 = time.perf_counter()
    store = Store.open(root, write=True)
    conn = store.conn
    replays.clear_stale(conn)
    replay_id = replays.begin_replay(conn, plan.names, plan.where)
    replays.add_units(conn, replay_id, plan.units)
    executor = executor or LocalExecutor(plan.workers)
    outcomes = {r.run_id: RunOutcome(r.run_id, r.tstamp, r.commit) for r in plan.runs}
    scratch = Path(tempfile.mkdtemp(prefix="flordb-replay-"))
    work = [(u, r) for r in plan.runs for u in r.work]
    try:
        calls = history.calls(conn, [r.run_id for r in plan.runs])
        finished = list(_run_units(root, conn, calls, scratch, work, executor, outcomes,
                                   progress))
        again = _judge(conn, replay_id, plan.runs, finished, outcomes, final=False)
        if again:
            replays.add_units(conn, replay_id, [u for u, _ in again])
            finished = list(_run_units(root, conn, calls, scratch, again, executor, outcomes,
                                       progress))
            _judge(conn, replay_id, list({id(r): r for _, r in again}.values()), finished,
                   outcomes, final=True)
        executor.shutdown(cancel=False)
    except BaseException:  # Ctrl-C included: stop the children, leave nothing half-done
        executor.shutdown(cancel=True)
        for unit_id in {u.unit_id for u in plan.units}:
            if replays.unit_status(conn, unit_id) in ("planned", "running"):
                replays.fail(conn, unit_id, "interrupted", None)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    store.close()
    return Report(plan, list(outcomes.values()), time.perf_counter() - t0)


def _run_units(root: Path, conn, calls: dict, scratch: Path,
               work: list[tuple[Directive, RunPlan]], executor: Executor,
               outcomes: dict[int, RunOutcome], progress: bool) -> Iterator[_Finished]:
    """Run ``work`` on ``executor``; yield each unit that ran to its end (exit 0, or
    :data:`~flordb.store.replays.DIVERGED_EXIT` after its state differed from the recording);
    fail the others in the store and in their run's outcome."""
    from tqdm import tqdm

    by_unit = {u.unit_id: (u, r) for u, r in work}
    futures: dict[Future, int] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(work)))) as materializing:
        jobs = materializing.map(
            lambda ur: _job(root, calls[ur[1].run_id], scratch, ur[1], ur[0]), work)
        for job in jobs:  # each unit starts as soon as its directory is ready
            replays.mark_running(conn, job.unit_id)
            futures[executor.submit(job)] = job.unit_id
    bar = tqdm(total=len(futures), desc="replay", unit="unit", disable=not progress,
               file=sys.stderr)
    for future in as_completed(futures):
        result = future.result()
        unit, run = by_unit[result.unit_id]
        if result.returncode in (0, replays.DIVERGED_EXIT):
            yield unit, run, result.seconds
        else:
            what = f"unit {unit.unit_id} (iterations {unit.start}..{unit.stop - 1}) exited " \
                   f"{result.returncode}:\n{result.tail}"
            replays.fail(conn, unit.unit_id, result.tail, result.seconds)
            if unit.verify:
                outcomes[run.run_id].cross_check_error = what
            else:
                outcomes[run.run_id].failures.append(what)
                bar.write(f"flordb replay: run {run.tstamp} {what}", file=sys.stderr)
        bar.update()
    bar.close()


def _judge(conn, replay_id: int, runs: list[RunPlan], finished: list[_Finished],
           outcomes: dict[int, RunOutcome], final: bool) -> list[tuple[Directive, RunPlan]]:
    """Keep or drop the values of ``runs``' finished units; return the units that execute
    again from the start the runs whose restored values could not be trusted (none when
    ``final``)."""
    by_run: dict[int, list[_Finished]] = {}
    for item in finished:
        by_run.setdefault(item[1].run_id, []).append(item)
    distrusted = _cross_checks(conn, replay_id, runs, by_run, outcomes) if not final else {}
    again: list[tuple[Directive, RunPlan]] = []
    for run in runs:
        outcome, mine = outcomes[run.run_id], by_run.get(run.run_id, [])
        outcome.compared, outcome.divergences = 0, []
        outcome.recording_agreed, outcome.recording_diverged = 0, ""
        diverged = _recording(conn, replay_id, run, mine, outcome)
        _fidelity(conn, replay_id, run, [u for u, _, _ in mine if not u.verify], outcome)
        why = diverged or distrusted.get(run.version.blob, "")
        if not why and outcome.divergences:
            d = outcome.divergences[0]
            why = f"re-executed recorded value {d.name} differs ({d.example})"
        for unit, _, seconds in mine:
            if not why or unit.verify:
                _finish(conn, unit, seconds, outcome)
            else:
                replays.fail(conn, unit.unit_id, f"not kept: {why}", seconds)
        if not why:
            continue
        if not final and run.restores:
            outcome.fell_back = why
            outcome.failures.clear()  # superseded: the executions below report their own
            units = crosscheck.fallback(run.units)
            run.strategy += " -> fell back: every iteration executed, nothing restored"
            run.units = run.units + units
            again += [(u, run) for u in units]
        else:
            outcome.not_written = why
    return again


def _cross_checks(conn, replay_id: int, runs: list[RunPlan], by_run: dict[int, list[_Finished]],
                  outcomes: dict[int, RunOutcome]) -> dict[str, str]:
    """Judge the cross-checks; return, per version (blob) whose check failed, why."""
    out: dict[str, str] = {}
    for run in runs:
        if run.verify is None:
            continue
        outcome = outcomes[run.run_id]
        d = replays.unit_checks(conn, run.verify.unit_id).diverged
        if outcome.cross_check_error:
            v = crosscheck.Verdict(run.run_id, run.verify.stop - 1,
                                   error=outcome.cross_check_error.splitlines()[0])
        elif d is not None:
            v = crosscheck.Verdict(run.run_id, d.iteration, error=(
                f"executing from the checkpoint before it, the state differs from the "
                f"recording's at iteration {d.iteration}: {d.detail}"))
        else:
            v = crosscheck.compare(conn, run.verify, run.units)
        outcome.cross_check = v.describe()
        _store_check(conn, replay_id, run.run_id, v)
        if v.disagrees:
            out.setdefault(run.version.blob, v.describe())
    return out


def _recording(conn, replay_id: int, run: RunPlan, mine: list[_Finished],
               outcome: RunOutcome) -> str:
    """Collect what ``run``'s units found against the recording; return why the run's values
    cannot be kept ("" when every boundary agreed)."""
    why = ""
    for unit, _, _ in mine:
        checks = replays.unit_checks(conn, unit.unit_id)
        outcome.recording_agreed += len(checks.agreed)
        d = checks.diverged
        if d is not None and not unit.verify and not why:
            why = outcome.recording_diverged = (
                f"RECORDING DIFFERS at iteration {d.iteration} (unit {unit.unit_id}, from "
                + (f"checkpoint {unit.restore_from}" if unit.restore_from is not None
                   else "the start") + f"): {d.places} place(s) differ; {d.detail}")
            replays.store_checks(conn, replay_id, run.run_id, [
                (f"recording {d.path}", outcome.recording_agreed, d.places, d.max_abs_diff,
                 f"iteration {d.iteration}: {d.detail}")])
    if not why and outcome.recording_agreed:
        replays.store_checks(conn, replay_id, run.run_id, [
            ("recording", outcome.recording_agreed, 0, None,
             "live state equals the recording's checkpoints")])
    return why


def _finish(conn, unit: Directive, seconds: float, outcome: RunOutcome) -> None:
    replays.complete(conn, unit, seconds)
    if not unit.verify:
        outcome.units_done += 1


def _store_check(conn, replay_id: int, run_id: int, v: crosscheck.Verdict) -> None:
    names = sorted({n for n, _, _ in v.differing}) or ["*"]
    replays.store_checks(conn, replay_id, run_id, [
        (f"cross-check {n}", v.compared, sum(1 for d in v.differing if d[0] == n or n == "*"),
         v.max_abs_diff(None if n == "*" else n), v.describe()) for n in names])


# --------------------------------------------------------------------- materializing a unit
def _job(root: Path, call: tuple[list[str], str, str | None], scratch: Path, run: RunPlan,
         unit: Directive) -> Job:
    """Materialize ``unit``'s directory and say how to run it (``call``: recorded argv,
    cwd, environment)."""
    import git

    from flordb.store.snapshot import commit_id

    repo = git.Repo(root)
    argv, cwd, recorded_env = call
    dest = _surroundings(root, scratch / f"unit-{unit.unit_id}")
    data = io.BytesIO()
    repo.archive(data, treeish=commit_id(run.commit), format="tar")
    data.seek(0)
    with tarfile.open(fileobj=data) as tar:
        tar.extractall(dest, filter="data")
    script = dest / run.version.filename
    script.write_bytes(encode_source(run.version.source, script.read_bytes()
                                     if script.exists() else b""))
    _link_missing(root, dest)
    try:
        rel_cwd = Path(cwd).resolve().relative_to(root)
        workdir = dest / rel_cwd
    except ValueError:
        workdir = Path(cwd)  # the run started outside the project
    workdir.mkdir(parents=True, exist_ok=True)
    env = run_environment(recorded_env)
    env.update(settings.environ(replay_unit=unit.unit_id, root=root, echo=False))
    package_dir = str(Path(__file__).resolve().parents[2])  # where flordb is importable from
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), package_dir) if p)
    return Job(unit.unit_id, [sys.executable, str(script), *argv[1:]], str(workdir), env)


#: Directories above the project mirrored around a unit's copy of it, so that relative paths
#: climbing out of the project (``../data``, ``../../shared``) reach what they did for the run.
SURROUNDING_LEVELS = 2


def _surroundings(root: Path, base: Path) -> Path:
    """Make ``base/<parent>/<project>`` (as many levels as :data:`SURROUNDING_LEVELS` and the
    path allow), with the entries beside each level linked to the real ones; return the
    directory that stands for the project."""
    chain = [root, *list(root.parents)[:SURROUNDING_LEVELS]]
    chain = [p for p in chain if p.name]  # never mirror the filesystem root
    dest = base.joinpath(*[p.name for p in reversed(chain[1:])], root.name)
    dest.mkdir(parents=True)
    here, inside = dest.parent, root
    for real in chain[1:]:
        for entry in real.iterdir():
            if entry.name != inside.name and not (here / entry.name).exists():
                (here / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
        here, inside = here.parent, real
    return dest


def run_environment(recorded: str | None) -> dict[str, str]:
    """The environment a replayed run sees: the variables it was recorded with (flordb's own
    left out); credentials, never recorded, come from today's environment when set there."""
    from flordb.store.redact import REDACTED

    if not recorded:
        return dict(os.environ)  # recorded before variables were kept
    env = {}
    for name, value in json.loads(recorded).items():
        if settings.is_flordb_variable(name):
            continue
        if REDACTED in value:
            if name in os.environ:
                env[name] = os.environ[name]
        else:
            env[name] = value
    return env


def _link_missing(root: Path, dest: Path) -> None:
    """Make files of the project that the snapshot lacks reachable from ``dest``."""
    for src_dir, dirs, files in os.walk(root):
        rel = Path(src_dir).relative_to(root)
        target_dir = dest / rel
        for d in list(dirs):
            if rel == Path(".") and d in (".git", ".flor"):
                dirs.remove(d)
            elif not (target_dir / d).exists():
                (target_dir / d).symlink_to(Path(src_dir) / d, target_is_directory=True)
                dirs.remove(d)  # linked whole: nothing below needs visiting
        for f in files:
            target, source = target_dir / f, Path(src_dir) / f
            if target.exists() or target.is_symlink():
                continue
            if source.is_file() and source.stat().st_size <= COPY_MAX_BYTES:
                shutil.copy2(source, target)
            else:
                target.symlink_to(source)


# --------------------------------------------------------------------- fidelity
def _fidelity(conn, replay_id: int, run: RunPlan, units: list[Directive],
              outcome: RunOutcome) -> None:
    """Compare the units' re-executed recorded values (still pending) with the recorded ones;
    store the checks."""
    import numpy as np

    if not units:
        return
    new = {n for u in units for n in u.new_names}
    rechecked = {k: v for k, v in history.unit_values(
        conn, "pending", [u.unit_id for u in units]).items() if k[0] not in new}
    if not rechecked:
        return
    names = sorted({k[0] for k in rechecked})
    recorded = history.recorded_values(conn, run.run_id, names)
    by_name: dict[str, list[tuple]] = {}
    for key, value in rechecked.items():
        if key in recorded:
            by_name.setdefault(key[0], []).append((key, recorded[key], value))
    checks = []
    for name, pairs in sorted(by_name.items()):
        outcome.compared += len(pairs)
        bad = [(k, a, b) for k, a, b in pairs if not same(a, b)]
        check = Divergence(name, len(pairs), len(bad), None, "")
        if bad:
            diffs = [abs(a - b) for _, a, b in bad
                     if isinstance(a, (int, float)) and isinstance(b, (int, float))]
            k, a, b = bad[0]
            check.max_abs_diff = float(np.max(diffs)) if diffs else None
            check.example = f"loop {k[1]} iteration {k[2]}: recorded {a!r}, replayed {b!r}"
            outcome.divergences.append(check)
        checks.append(check)
    replays.store_checks(conn, replay_id, run.run_id, [
        (c.name, c.compared, c.differing, c.max_abs_diff, c.example) for c in checks])
