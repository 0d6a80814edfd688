"""Plan a replay: which runs lack which names, how each version is patched, what must run.

:func:`make_plan` reads the store and the git history and returns a :class:`Plan`: the patched
source of every version involved (propagation), and for every run its work units
(:class:`~flordb.store.replays.Directive`) with a cost estimate from the run's recorded timing.
Nothing is executed and nothing is written; :mod:`flordb.hindsight.replay` carries a plan out.

Per run the planner decides, from where each new statement sits
(:mod:`flordb.hindsight.analysis`) and which checkpoints exist:

- statements only *before the loops*: run the prefix, stop where the main loop starts;
- statements in the *outer loop body* whose inputs a checkpoint restores: skip the inner loops
  (restoring checkpoints instead), split the iterations into units at checkpoints;
- anything else in the loops: run the iterations in full, from checkpoints when every carried
  state is restored, else from the start in one unit;
- statements *after the loops*: also run what follows the main loop (from its last checkpoint
  when that is safe).
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from flordb.checkpoint import available
from flordb.errors import ParseError, PlanError, SnapshotError
from flordb.hindsight import analysis as A
from flordb.hindsight.cst_tree import decode_source
from flordb.hindsight.propagate import Placement, Propagator
from flordb.store import history, replays
from flordb.store.db import Connection
from flordb.store.executions import recorded_args
from flordb.store.handle import Store
from flordb.store.replays import Directive

#: Assumed read throughput when estimating the cost of restoring a checkpoint (bytes/s).
_RESTORE_BPS = 2e8


@dataclass
class Version:
    """One past version of one script (one git blob), patched with the new statements."""

    filename: str
    blob: str
    original: str = ""
    source: str = ""  # patched
    placements: list[Placement] = field(default_factory=list)
    error: str = ""

    @property
    def names(self) -> list[str]:
        """Names whose statement could be placed (or was already there)."""
        return [p.name for p in self.placements if p.status != "failed" and p.name]


@dataclass
class RunPlan:
    """The units of one run and how they were decided."""

    run_id: int
    tstamp: str
    commit: str  # the run's code snapshot, materialized for its units
    version: Version
    names: list[str]
    strategy: str
    units: list[Directive]
    estimate_s: float
    scratch_s: float
    positions: dict[str, str] = field(default_factory=dict)
    #: The cross-check: a boundary reached by execution, compared with the restored one.
    verify: Directive | None = None
    #: Variables the run saw whose values were never recorded (credentials).
    credentials: list[str] = field(default_factory=list)

    @property
    def work(self) -> list[Directive]:
        """The units to run, its cross-check included."""
        return [*self.units, *([self.verify] if self.verify else [])]

    @property
    def restores(self) -> bool:
        """Whether some of this run's values are computed from restored state."""
        return any(u.skip_inner or u.restore_from is not None for u in self.units)


@dataclass
class Plan:
    """Everything a replay will do; :meth:`render` shows it to the user."""

    names: list[str]
    where: str | None
    workers: int
    versions: list[Version]
    runs: list[RunPlan]
    skipped: list[tuple[str, str]]  # (run or script, why)

    @property
    def units(self) -> list[Directive]:
        """Every unit to run, cross-checks included."""
        return [u for r in self.runs for u in r.work]

    def estimate_s(self) -> tuple[float, float]:
        """(estimated wall time on ``workers``, time to re-run the same runs from scratch)."""
        costs = sorted((r.estimate_s / max(1, len(r.units)) for r in self.runs
                        for _ in r.units), reverse=True)
        lanes = [0.0] * max(1, self.workers)
        for c in costs:  # longest first onto the least loaded worker
            lanes[lanes.index(min(lanes))] += c
        return max(lanes), sum(r.scratch_s for r in self.runs)

    def render(self) -> str:
        """A human-readable plan: versions and placements, per-run strategy and cost."""
        out = [f"replay {', '.join(self.names)}"
               + (f" where {self.where}" if self.where else "")
               + f": {len(self.runs)} runs, {len(self.units)} units, {self.workers} workers"]
        for version in self.versions:
            runs = [r for r in self.runs if r.version is version]
            out.append(f"  version {version.blob[:10]} of {version.filename} ({len(runs)} runs)")
            if version.error:
                out.append(f"    not replayed: {version.error}")
            for p in version.placements:
                out.append(f"    {p.describe()}")
        for r in self.runs:
            where = "; ".join(f"{n}: {pos}" for n, pos in r.positions.items())
            out.append(f"  run {r.tstamp} {r.version.filename}: {r.strategy}; "
                       f"{len(r.units)} unit(s), ~{r.estimate_s:.1f}s "
                       f"(from scratch ~{r.scratch_s:.1f}s) [{where}]")
            if r.credentials:
                today = [c for c in r.credentials if c in os.environ]
                gone = [c for c in r.credentials if c not in os.environ]
                out.append("    credentials the run saw are not recorded: "
                           + "; ".join(p for p in (
                               today and "taken from today's environment: " + ", ".join(today),
                               gone and "missing today: " + ", ".join(gone)) if p))
            if r.verify is not None:
                v = r.verify
                start = f"checkpoint {v.restore_from}" if v.restore_from is not None \
                    else "the start"
                out.append(f"    cross-check: iteration {v.stop - 1} reached by executing from "
                           f"{start}, compared with the restored state and the recording")
        for what, why in self.skipped:
            out.append(f"  skipped {what}: {why}")
        wall, scratch = self.estimate_s()
        out.append(f"estimated {wall:.1f}s on {self.workers} workers "
                   f"(re-running these runs from scratch: ~{scratch:.1f}s of compute)")
        return "\n".join(out)


#: Which runs replayed from restored state get a cross-check: one per version and distinct
#: recorded values of the ``flor.arg``s that may decide its control flow (default), one per
#: version, every run, or none. Every unit that executes iterations is checked against the
#: recording anyway.
VerifyMode = Literal["args", "version", "run", "none"]
VERIFY_MODES: tuple[VerifyMode, ...] = get_args(VerifyMode)


def make_plan(root: Path, names: Sequence[str], where: str | None = None,
              workers: int | None = None, verify: VerifyMode = "args") -> Plan:
    """Plan back-filling ``names`` into the completed runs of the project at ``root``.

    A name may also be given as ``SCRIPT@LINE`` (or ``@LINE`` when one script qualifies): the
    ``flor.log`` statement at that line of today's script, which names what it logs.
    ``verify`` says which runs replayed from restored state get a cross-check (see
    :data:`VERIFY_MODES` and ``docs/replay.md``).
    """
    if verify not in VERIFY_MODES:
        raise PlanError(f"verify must be one of {', '.join(VERIFY_MODES)}, not {verify!r}")
    if not names:
        raise PlanError("name at least one logged name to replay")
    workers = workers or os.cpu_count() or 1
    with Store.open(root) as store:
        resolved = [_by_line(root, store.conn, n) if "@" in n else n for n in names]
        return _Planner(root, store, list(dict.fromkeys(resolved)), where, workers,
                        verify).plan()


def _by_line(root: Path, conn: Connection, spec: str) -> str:
    """The logged name of the ``flor.log`` at ``SCRIPT@LINE`` (or ``@LINE``) today."""
    from flordb.hindsight.propagate import find_statements

    script, _, line = spec.rpartition("@")
    if not line.isdigit():
        raise PlanError(f"{spec!r}: give a statement as SCRIPT@LINE, e.g. train.py@42")
    scripts = [script] if script else history.script_names(conn)
    found = []
    for name in scripts:
        try:
            source = decode_source((root / name).read_bytes(), name)
            found += [(name, logged) for logged, _, _ in find_statements(source,
                                                                        lines=[int(line)])]
        except (OSError, ParseError):
            continue
    if len(found) != 1:
        where = "in " + ", ".join(scripts) if scripts else "(no runs recorded)"
        raise PlanError(f"{spec!r}: {'no' if not found else 'more than one'} flor.log "
                        f"statement at line {line} {where}"
                        + ("" if found or script else "; name the script: SCRIPT@LINE"))
    if found[0][1] is None:
        raise PlanError(f"{spec!r}: the flor.log at that line has no literal name to record")
    return found[0][1]


class _Planner:
    def __init__(self, root: Path, store: Store, names: list[str],
                 where: str | None, workers: int, verify: VerifyMode = "args") -> None:
        self.root, self.store, self.names, self.where, self.workers = (
            root, store, names, where, workers)
        self.conn = store.conn
        self.verify = verify
        self.verified: set[str] = {""}  # groups of runs given a cross-check
        self.skipped: list[tuple[str, str]] = []
        self.versions: dict[tuple[str, str], Version] = {}
        self.propagators: dict[str, Propagator | None] = {}
        self.analyses: dict[tuple, A.Analysis] = {}

    def plan(self) -> Plan:
        runs = self._candidate_runs()
        todo = []
        for run_id, tstamp, filename, snapshot in runs:
            lacking = self._lacking(run_id)
            if not lacking:
                continue
            if not snapshot:
                self.skipped.append((f"run {tstamp}", "no code snapshot (recorded outside git)"))
                continue
            version = self._version(filename, snapshot)
            if version is None:
                continue
            wanted = [n for n in lacking if n in version.names]
            if version.error or not wanted:
                continue
            todo.append((run_id, tstamp, snapshot, version, {n: lacking[n] for n in wanted}))
        per_run = max(1, math.ceil(self.workers / max(1, len(todo))))
        plans = [p for p in (self._plan_run(*args, per_run) for args in todo) if p.units]
        used = {id(p.version) for p in plans}
        versions = [v for v in self.versions.values() if id(v) in used or v.error]
        return Plan(self.names, self.where, self.workers, versions, plans, self.skipped)

    # ------------------------------------------------------------------ runs and names
    def _candidate_runs(self) -> list[tuple[int, str, str, str | None]]:
        allowed = self._where_runs() if self.where else None
        out = []
        for run in self.store.runs():
            if allowed is not None and run.run_id not in allowed:
                continue
            if run.status != "completed":
                self.skipped.append((f"run {run.tstamp}", f"{run.status}, not completed"))
                continue
            out.append((run.run_id, run.tstamp, run.filename, run.snapshot))
        return out

    def _where_runs(self) -> set[int]:
        from flordb.errors import WhereError

        try:
            return set(self.store.runs_table(self.where)["run_id"].tolist())
        except WhereError as exc:
            raise PlanError(f"--{exc}") from None

    def _lacking(self, run_id: int) -> dict[str, tuple[bool, bool, list[tuple[int, int]]]]:
        """name -> (prefix done, suffix done, iteration ranges done) for names to fill."""
        out = {}
        for name in self.names:
            if history.recorded(self.conn, run_id, name):
                continue  # recorded: the run's own value is the truth
            done = replays.done_ranges(self.conn, run_id, name)
            prefix = any(d[2] for d in done)
            suffix = any(d[3] for d in done)
            ranges = [(d[0], d[1]) for d in done]
            out[name] = (prefix, suffix, ranges)
        return out

    # ------------------------------------------------------------------ versions
    def _version(self, filename: str, commit: str) -> Version | None:
        propagator = self._propagator(filename)
        if propagator is None:
            return None
        try:
            blob = git_show(self.root, commit, filename, "rev-parse").strip()
        except LookupError as exc:
            self.skipped.append((f"snapshot {commit[:10]}", str(exc)))
            return None
        key = (filename, blob)
        if key in self.versions:
            return self.versions[key]
        v = self.versions[key] = Version(filename, blob)
        try:
            v.original = git_show(self.root, commit, filename)
            result = propagator.into(v.original)
        except (ParseError, LookupError) as exc:
            v.error = str(exc)
            return v
        v.source, v.placements = result.source, result.placements
        if not v.names:
            v.error = "no statement could be placed"
        return v

    def _propagator(self, filename: str) -> Propagator | None:
        if filename not in self.propagators:
            path = self.root / filename
            prop = None
            try:
                prop = Propagator(decode_source(path.read_bytes(), filename), self.names)
            except OSError as exc:
                self.skipped.append((filename, f"cannot read today's version: {exc}"))
            except ParseError as exc:
                self.skipped.append((filename, str(exc)))
            if prop is not None and not prop.selected:
                self.skipped.append((filename, "today's version logs none of these names"))
                prop = None
            self.propagators[filename] = prop
        return self.propagators[filename]

    # ------------------------------------------------------------------ one run
    def _plan_run(self, run_id: int, tstamp: str, commit: str, version: Version,
                  lacking: dict[str, tuple], per_run: int) -> RunPlan:
        c = self.conn
        main = history.main_loop(c, run_id)
        depths = history.loop_depths(c, run_id)
        lines = {p.name: p.old_line for p in version.placements
                 if p.name in lacking and p.old_line}
        key = (version.blob, tuple(lines.values()), main[1] if main else None,
               tuple(sorted(depths.items())))
        if key not in self.analyses:  # runs of one version share their analysis
            self.analyses[key] = A.analyze(version.source, lines.values(), key[2], depths)
        an = self.analyses[key]
        sites = dict(zip(lines, an.sites))
        recorded = self._recorded_names(run_id)
        timing = _Timing(c, run_id, main)
        plan = RunPlan(run_id, tstamp, commit, version, list(lacking), "", [], 0.0, timing.total,
                       {n: s.position for n, s in sites.items()})
        env_vars = history.env_vars(c, run_id)
        if env_vars:
            from flordb.store.redact import REDACTED

            plan.credentials = sorted(k for k, v in json.loads(env_vars).items()
                                      if v == REDACTED)
        # Names with the same progress from earlier replays are planned together.
        groups: dict[str, list[str]] = defaultdict(list)
        for name in lacking:
            groups[json.dumps(lacking[name])].append(name)
        for progress, group in groups.items():
            prefix_done, suffix_done, done = json.loads(progress)
            strategy, units = self._units(
                run_id, main, an, [sites[n] for n in group], per_run,
                prefix_done, suffix_done, [tuple(r) for r in done])
            compare = self._comparable(an, recorded, units)
            for u in units:
                u.new_names, u.compare_names = group, compare
            plan.units += units
            plan.strategy = strategy
            plan.estimate_s += sum(timing.cost(u) for u in units)
        checked = self._verify_group(run_id, version, an.control_args)
        if plan.restores and main is not None and checked not in self.verified:
            plan.verify = self._cross_check(run_id, main, plan.units)
            if plan.verify is not None:
                self.verified.add(checked)
                plan.estimate_s += timing.cost(plan.verify)
        return plan

    def _verify_group(self, run_id: int, version: Version, control_args: set[str]) -> str:
        """The runs of which one gets a cross-check (``""``: never verified, with ``none``).
        With ``args``, runs of a version share one when they agree on every ``flor.arg`` that
        may decide its control flow (every arg, when the analysis cannot tell)."""
        if self.verify == "none":
            return ""
        if self.verify == "version":
            return version.blob
        if self.verify == "run":
            return f"{version.blob} {run_id}"
        args = recorded_args(self.conn, run_id).get(run_id, {})
        if "*" not in control_args:
            args = {k: v for k, v in args.items() if k in control_args}
        return f"{version.blob} {json.dumps(args, sort_keys=True, default=repr)}"

    def _cross_check(self, run_id: int, main: tuple, units: list[Directive]
                     ) -> Directive | None:
        """A unit that reaches the first boundary where the plan uses restored state by
        executing everything before it from the previous checkpoint (or the start), and
        records the boundary's iteration for comparison."""
        main_id = main[0]
        ckpts = available(self.conn, run_id, main_id, self.root)
        boundaries = []
        for u in units:
            if u.restore_from is not None and u.start > 0:
                boundaries.append(u.start)  # fast-forwarded to: everything before is skipped
            if u.skip_inner:
                boundaries += [i for i in ckpts if max(1, u.start) <= i < u.stop]
        if not boundaries:
            return None
        # Cheapest first: a boundary whose previous iteration has a checkpoint.
        b = next((x for x in sorted(set(boundaries)) if x - 1 in ckpts), min(boundaries))
        before = max((c for c in ckpts if c < b), default=None)
        first = units[0]
        if any(u.skip_inner for u in units):
            # Statements at the outer level only: execute iteration b - 1 in full (its values
            # after the inner loop), reach b (its values before the inner loop), stop there.
            return first.cross_check(b - 1, b + 1, before, stop_at_inner=True)
        return first.cross_check(b, b + 1, before)

    def _recorded_names(self, run_id: int) -> set[str]:
        return history.recorded_names(self.conn, run_id)

    @staticmethod
    def _comparable(an: A.Analysis, recorded: set[str], units: list[Directive]) -> list[str]:
        """Recorded names whose re-executed values must equal the recorded ones."""
        skips = any(u.skip_inner for u in units)
        restores = any(u.restore_from is not None for u in units)
        out = []
        for name, reads in an.log_reads.items():
            if name not in recorded or name in an.clocked:
                continue
            inputs = an.inputs(reads)
            if skips and (((an.carried | an.inner_changed) - an.restored) & inputs
                          or an.after_inner_changed & an.restored & inputs):
                continue  # computed from state that skipping leaves stale or a step ahead
            if restores and not an.fast_forward_ok(reads):
                continue
            out.append(name)
        return sorted(out)

    def _units(self, run_id: int, main: tuple | None, an: A.Analysis, sites: list[A.Site],
               per_run: int, prefix_done: bool, suffix_done: bool,
               done: list[tuple[int, int]]) -> tuple[str, list[Directive]]:
        positions = {s.position for s in sites}
        reads = set().union(*(s.reads for s in sites))
        if main is None or not an.has_main_loop:
            return "run the whole script", [Directive.whole_script(run_id)]
        outer_loops = history.outer_loop_count(self.conn, run_id)
        if outer_loops > 1 and positions - {A.BEFORE}:
            # Several outermost loop instances (a loop re-entered, or more than one loop):
            # iterations and what follows the first one are not split; the whole run runs.
            unit = Directive.from_start(run_id, main[0], main[2] or 0)
            return "run everything from the start (several outermost loops)", [unit]
        main_id, _, n = main
        n = n or 0
        ckpts = [i for i in available(self.conn, run_id, main_id, self.root) if i <= n]
        in_loop = positions & {A.HEAD, A.AFTER_INNER, A.INNER, A.UNKNOWN}
        after = bool(positions & {A.AFTER, A.UNKNOWN})
        before = bool(positions & {A.BEFORE, A.UNKNOWN})
        todo = _subtract([(0, n)], done) if in_loop else []
        if not in_loop:
            units = []
            if before and not prefix_done:
                units.append(Directive.prefix(run_id, main_id))
            if after and not suffix_done:
                last = max(ckpts, default=None)
                if last is not None and an.fast_forward_ok(reads):
                    units.append(Directive.suffix_from(run_id, main_id, last, n))
                else:
                    units.append(Directive.from_start(run_id, main_id, n, owns_prefix=False))
            strategy = ("run the prefix only" if not after else
                        "fast-forward to the last checkpoint, run the rest"
                        if units and units[-1].restore_from is not None else
                        "run everything from the start")
            return strategy, units
        outer_only = not positions - {A.HEAD, A.AFTER_INNER, A.BEFORE, A.AFTER}
        skip = (outer_only and bool(ckpts)
                and all(an.skip_ok(s) for s in sites if s.position in (A.HEAD, A.AFTER_INNER)))
        ff = bool(ckpts) and (skip or an.fast_forward_ok(reads))
        if skip:
            strategy = "skip inner loops, restoring checkpoints"
        elif outer_only and ckpts and an.dangling and ff:
            strategy = ("run iterations from checkpoints (inner loops executed: code after "
                        f"them reads {', '.join(sorted(an.dangling))}, which only they bind)")
        elif ff:
            strategy = "run iterations from checkpoints"
        else:
            strategy = ("run everything from the start (no checkpoints)" if not ckpts else
                        "run everything from the start (state not restorable: "
                        + ", ".join(sorted(an.unrestorable(reads))) + ")")
        ranges = []
        for a, b in todo:
            ranges += _split(a, b, ckpts, per_run) if ff else [(a, b)]
        if not ff and ranges:
            ranges = [(0, ranges[-1][1])]  # from scratch: one unit up to the last gap
        units = []
        for a, b in ranges:
            units.append(Directive.window(
                run_id, main_id, a, b,
                max((c for c in ckpts if c <= a), default=None) if ff and a > 0 else None,
                skip_inner=skip,
                owns_prefix=a == 0 and not prefix_done,
                owns_suffix=b >= n and not suffix_done,
                run_suffix=after and b >= n and not suffix_done))
        if before and not prefix_done and not any(u.owns_prefix for u in units):
            units.insert(0, Directive.prefix(run_id, main_id))
        return strategy, units


class _Timing:
    """Cost estimates for one run from its recorded timing."""

    def __init__(self, conn: Connection, run_id: int, main: tuple | None) -> None:
        started, ended = history.span(conn, run_id)
        self.total = max(0.0, (ended or started) - started)
        rows = history.loop_timing(conn, run_id)
        outer = [r for r in rows if r[1] == 1]
        self.iteration = self.inner = 0.0
        loops_s = sum(r[3] for r in outer)
        if main is not None:
            for name, depth, iterations, seconds in outer:
                if name == main[1] and iterations:
                    self.iteration = seconds / iterations
            if main[2]:
                self.inner = sum(r[3] for r in rows if r[1] == 2) / main[2]
        self.prefix = max(0.0, self.total - loops_s)
        self.restore = (history.mean_checkpoint_bytes(conn, run_id) or 0) / _RESTORE_BPS

    def cost(self, d: Directive) -> float:
        n = max(0, d.stop - d.start)
        per = self.iteration - (self.inner if d.skip_inner else 0.0)
        restores = (n if d.skip_inner else 0) + (1 if d.restore_from is not None else 0)
        return self.prefix + n * max(per, 0.0) + restores * self.restore


def _subtract(ranges: list[tuple[int, int]], done: list[tuple[int, int]]) -> list[tuple[int,
                                                                                     int]]:
    """``ranges`` minus the iterations covered by ``done``."""
    out = ranges
    for a, b in done:
        nxt = []
        for x, y in out:
            if b <= x or a >= y:
                nxt.append((x, y))
            else:
                if x < a:
                    nxt.append((x, a))
                if b < y:
                    nxt.append((b, y))
        out = nxt
    return out


def _split(a: int, b: int, ckpts: list[int], pieces: int) -> list[tuple[int, int]]:
    """Split ``a..b`` into up to ``pieces`` ranges starting at checkpoints (or at ``a``)."""
    if pieces <= 1 or b - a <= 1:
        return [(a, b)]
    cuts = {a}
    for k in range(1, pieces):
        ideal = a + (b - a) * k / pieces
        below = [c for c in ckpts if a < c < b and c <= ideal]
        if below:
            cuts.add(max(below))
    starts = sorted(cuts)
    return list(zip(starts, starts[1:] + [b]))


def git_show(root: Path, commit: str, filename: str, command: str = "show") -> str:
    """The text of ``filename`` in ``commit``, decoded as its coding line says
    (``command="rev-parse"``: its blob id)."""
    import git

    try:
        from flordb.store.snapshot import commit_id

        out = git.Repo(root).git.execute(["git", command, f"{commit_id(commit)}:{filename}"],
                                         strip_newline_in_stdout=False,
                                         stdout_as_string=False)
    except git.GitCommandError as exc:
        raise SnapshotError(f"{filename} is not in snapshot {commit[:10]}: "
                          f"{exc.stderr.strip()}") from None
    assert isinstance(out, bytes)
    return out.decode() if command == "rev-parse" else decode_source(out, filename)
