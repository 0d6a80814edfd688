"""The cross-check that makes a replay from restored state check itself.

Static analysis cannot see everything a statement reads: an attribute set on a module, a
buffer that is not persistent, hidden state in an object nobody enrolled. So for each version
replayed from restored state, the planner adds a *cross-check* unit
(:meth:`~flordb.hindsight.plan._Planner._cross_check`): it reaches the first boundary where the
plan uses restored state by *executing* everything before it (from the previous checkpoint, or
from the start) and records that iteration. :func:`compare` sets its values beside the ones the
plan's units computed from the restored state; any difference means the checkpoint does not
hold everything the statements read, and the replay falls back to executing what it skipped
(:func:`fallback`). A check with nothing to compare (a statement after the loops) neither agrees
nor disagrees: the units' checks against the recording (:mod:`flordb.replaying`) decide. The
values of the plan's units stay pending, invisible, until their run is judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from flordb.store import history
from flordb.store.db import Connection
from flordb.store.replays import Directive

#: Relative and absolute tolerance for floats (restored state is bit-exact on CPU; GPU kernels
#: need not be).
REL_TOL, ABS_TOL = 1e-6, 1e-9


@dataclass
class Verdict:
    """The outcome of one cross-check: values compared and those that differ."""

    run_id: int
    iteration: int
    compared: int = 0
    differing: list[tuple[str, object, object]] = field(default_factory=list)
    error: str = ""

    @property
    def agrees(self) -> bool:
        return not self.error and not self.differing and self.compared > 0

    @property
    def disagrees(self) -> bool:
        """A difference or a failure; a check with nothing to compare does neither, and the
        units' checks against the recording decide."""
        return bool(self.error or self.differing)

    def max_abs_diff(self, name: str | None = None) -> float | None:
        diffs = [abs(a - b) for n, a, b in self.differing  # type: ignore[operator]
                 if (name is None or n == name) and _number(a) and _number(b)]
        return max(diffs) if diffs else None

    def describe(self) -> str:
        if self.error:
            return f"cross-check at iteration {self.iteration} could not run: {self.error}"
        if self.agrees:
            return (f"cross-check at iteration {self.iteration}: {self.compared} values agree "
                    "(restored state = executed state)")
        if not self.compared and not self.differing:
            return (f"cross-check at iteration {self.iteration}: no value to compare (the "
                    "checks against the recording decide)")
        name, restored, executed = self.differing[0]
        worst = self.max_abs_diff()
        return (f"cross-check at iteration {self.iteration} DISAGREES: "
                f"{len(self.differing)}/{self.compared + len(self.differing)} values differ"
                + (f", max |diff| {worst:.3g}" if worst is not None else "")
                + f"; {name}: from restored state {restored!r}, executed {executed!r}")


def compare(conn: Connection, verify: Directive, units: list[Directive]) -> Verdict:
    """Compare the pending values of ``verify`` with those of ``units`` at its iteration."""
    verdict = Verdict(verify.run_id, verify.stop - 1)
    executed = history.unit_values(conn, "pending", [verify.unit_id])
    restored = history.unit_values(conn, "pending", [u.unit_id for u in units])
    at = _contexts_at(conn, verify.run_id, verify.main_loop_id, verify.start, verify.stop)
    restored = {k: v for k, v in restored.items() if k[1] in at and
                (k[1] != verify.main_loop_id or verify.start <= k[2] < verify.stop)}
    # Every new value the execution computed must have its restored counterpart; re-executed
    # recorded names are compared where both sides computed them (a skipped inner loop
    # computes none of its own, and a cross-check may stop before the last inner loop).
    new = set(verify.new_names)
    keys = {k for k in executed if k[0] in new} | (set(executed) & set(restored))
    for key in sorted(keys, key=repr):
        if key not in restored or key not in executed:
            verdict.differing.append((key[0], restored.get(key, "<missing>"),
                                      executed.get(key, "<missing>")))
        elif same(restored[key], executed[key]):
            verdict.compared += 1
        else:
            verdict.differing.append((key[0], restored[key], executed[key]))
    return verdict


def fallback(units: list[Directive]) -> list[Directive]:
    """The same windows executed from the start, nothing skipped, nothing restored: one unit
    per run of adjacent windows (executing from the start, one process does them all)."""
    out: list[Directive] = []
    for u in sorted(units, key=lambda u: u.start):
        last = out[-1] if out else None
        if last is not None and last.stop == u.start:
            last.stop = u.stop
            last.owns_prefix |= u.owns_prefix
            last.owns_suffix |= u.owns_suffix
            last.run_suffix |= u.run_suffix
            continue
        out.append(u.executed_from_start())
    return out


def same(a: object, b: object) -> bool:
    """Equal, NaN equal to NaN, floats within :data:`REL_TOL`/:data:`ABS_TOL`."""
    if _number(a) and _number(b):
        a_, b_ = float(a), float(b)  # type: ignore[arg-type]
        if math.isnan(a_) and math.isnan(b_):
            return True
        return math.isclose(a_, b_, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and the like: compare their reprs
        return repr(a) == repr(b)


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _contexts_at(conn: Connection, run_id: int, main_id: int | None,
                 start: int, stop: int) -> set[int]:
    """The main loop and the loop instances nested in its iterations ``start..stop-1``."""
    parents = history.loop_parents(conn, run_id)
    inside = {main_id} if main_id is not None else set()
    for loop_id in parents:
        node = loop_id
        while node in parents and parents[node][0] not in (0, main_id):
            node = parents[node][0]
        if node in parents and parents[node][0] == main_id \
                and start <= parents[node][1] < stop:
            inside.add(loop_id)
    return inside
