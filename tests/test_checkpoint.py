"""Adaptive checkpoints: what they hold, when they are taken, and exact restore."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import flordb as flor
from flordb import checkpoint, state
from flordb.store import objects
from flordb.store.db import connect_reader
from tests.conftest import run_script, write_script

TORCH_SCRIPT = """
import contextlib, json, os, sys
import torch
import torch.nn.functional as F
import flordb as flor
from flordb import checkpoint
from flordb.store.db import connect_reader

torch.manual_seed(0)
X = torch.randn(256, 8)
y = (X.sum(1) > 0).long()
net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                          torch.nn.Linear(32, 2))
opt = torch.optim.Adam(net.parameters(), lr=0.01)
sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
objs = {"net": net, "opt": opt, "sched": sched}
EPOCHS, start = 6, 0
restore = os.environ.get("RESTORE")
if restore:
    run_id, loop_id, k = map(int, restore.split(","))
    conn = connect_reader(flor.runtime.RUNTIME.project_root())
    ck = checkpoint.load(flor.runtime.RUNTIME.project_root(), conn, run_id, loop_id, k)
    checkpoint.apply(ck, objs)
    start = ck.iteration
losses = []
block = contextlib.nullcontext() if restore else flor.checkpointing(**objs)
with block:
    epochs = range(start, EPOCHS) if restore else flor.loop("epoch", range(EPOCHS))
    for epoch in epochs:
        perm = torch.randperm(256)
        for i in range(0, 256, 32):
            idx = perm[i:i + 32]
            loss = F.cross_entropy(net(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        losses.append(loss.item())
torch.save(net.state_dict(), os.environ["OUT"])
print(json.dumps(losses))
"""


def outer_loop_id(repo: Path, run_id: int = 1) -> int:
    conn = sqlite3.connect(repo / ".flor" / "flor.db")
    return conn.execute("SELECT loop_id FROM loops WHERE run_id = ? AND depth = 1",
                        (run_id,)).fetchone()[0]


def checkpoint_iters(repo: Path) -> list[int]:
    conn = sqlite3.connect(repo / ".flor" / "flor.db")
    return [r[0] for r in conn.execute("SELECT DISTINCT iter FROM checkpoints ORDER BY iter")]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_torch_restore_and_continue_is_bit_exact(repo, k):
    torch = pytest.importorskip("torch")
    env = {"FLORDB_EPSILON": "1000", "OUT": str(repo / "full.pt")}
    full = json.loads(run_script(repo, TORCH_SCRIPT, env=env).stdout)
    assert checkpoint_iters(repo) == [1, 2, 3, 4, 5, 6]
    env = {"RESTORE": f"1,{outer_loop_id(repo)},{k}", "OUT": str(repo / "resumed.pt")}
    resumed = json.loads(run_script(repo, None, env=env).stdout)
    assert resumed == full[k:]
    a, b = torch.load(repo / "full.pt"), torch.load(repo / "resumed.pt")
    assert all(torch.equal(a[name], b[name]) for name in a)


NUMPY_SCRIPT = """
import json, os, random
import numpy as np
import flordb as flor
from flordb import checkpoint
from flordb.store.db import connect_reader

np.random.seed(1)
random.seed(2)
weights = np.zeros(5)
history = {"seen": []}
objs = {"weights": weights, "history": history}
start = 0
if os.environ.get("RESTORE"):
    run_id, loop_id, k = map(int, os.environ["RESTORE"].split(","))
    root = flor.runtime.RUNTIME.project_root()
    ck = checkpoint.load(root, connect_reader(root), run_id, loop_id, k)
    checkpoint.apply(ck, objs)
    start = ck.iteration
out = []
def body():
    weights[:] += np.random.normal(size=5) * random.random()
    history["seen"].append(random.randint(0, 100))
    out.append([float(weights.sum()), history["seen"][-1]])
if os.environ.get("RESTORE"):
    for i in range(start, 8):
        body()
else:
    with flor.checkpointing(**objs):
        for i in flor.loop("i", range(8)):
            body()
print(json.dumps({"out": out, "history": history["seen"]}))
"""


def test_numpy_and_random_restore_and_continue_is_exact(repo):
    full = json.loads(run_script(repo, NUMPY_SCRIPT, env={"FLORDB_EPSILON": "1000"}).stdout)
    resumed = json.loads(run_script(repo, None,
                                    env={"RESTORE": f"1,{outer_loop_id(repo)},4"}).stdout)
    assert resumed["out"] == full["out"][4:]
    assert resumed["history"] == full["history"]


def test_cheap_state_is_checkpointed_every_iteration(runtime):
    small = np.zeros(100)
    with flor.checkpointing(small=small):
        for i in flor.loop("epoch", range(8)):
            small += 1
            time.sleep(0.2)  # an epoch that dwarfs copying 800 bytes
    flor.commit()
    iters = flor.query("SELECT DISTINCT iter FROM checkpoints ORDER BY iter")["iter"].tolist()
    assert iters == list(range(1, 9))
    timing = flor.query("SELECT * FROM loop_timing WHERE name = 'epoch'").iloc[0]
    assert timing["checkpoints"] == 8 and timing["iterations"] == 8
    assert timing["iter_mean_s"] == pytest.approx(0.2, rel=0.5)
    assert timing["checkpoint_s"] < checkpoint.DEFAULT_EPSILON * 8 * 0.2


class StallsOnce:
    """Pickling it takes 15 ms the 10th time: one noisy checkpoint (a disk stall, say)."""

    calls = 0

    def __reduce__(self):
        StallsOnce.calls += 1
        if StallsOnce.calls == 10:
            time.sleep(0.015)
        return (StallsOnce, ())


def test_one_slow_checkpoint_does_not_suppress_the_next_ones(runtime):
    """The next cost is the median of recent ones, and the budget is what was really spent:
    after one slow checkpoint, cheap state is still checkpointed every iteration."""
    small = np.zeros(1000)
    with flor.checkpointing(small=small, stalls=StallsOnce()):
        for i in flor.loop("epoch", range(30)):
            small += 1
            time.sleep(0.1)
    flor.commit()
    iters = flor.query("SELECT DISTINCT iter FROM checkpoints ORDER BY iter")["iter"].tolist()
    assert StallsOnce.calls >= 10
    assert len(iters) >= 29 and iters[-1] == 30, iters
    timing = flor.query("SELECT * FROM loop_timing WHERE name = 'epoch'").iloc[0]
    assert timing["checkpoint_s"] <= checkpoint.DEFAULT_EPSILON * timing["seconds"]


def test_expensive_state_is_periodic_within_budget(runtime):
    big = np.ones(12_500_000)  # 100 MB: each capture costs tens of ms
    compute = 0.0
    with flor.checkpointing(big=big):
        for i in flor.loop("epoch", range(200)):
            t = time.perf_counter()
            time.sleep(0.025)
            compute += time.perf_counter() - t
    flor.commit()
    ck = flor.query("SELECT iter, capture_s FROM checkpoints WHERE name = 'big'")
    timing = flor.query("SELECT * FROM loop_timing WHERE name = 'epoch'").iloc[0]
    assert 1 <= len(ck) <= 30, ck
    assert timing["checkpoint_s"] <= checkpoint.DEFAULT_EPSILON * compute * 1.25, \
        (timing["checkpoint_s"], compute)
    # identical states are stored once
    digests = flor.query("SELECT DISTINCT object FROM checkpoints WHERE name = 'big'")
    assert len(digests) == 1


def test_objects_that_cannot_be_restored_in_place_are_refused(runtime):
    with pytest.raises(state.NotRestorableError, match="cannot be restored in place"):
        with flor.checkpointing(lr=0.1):
            pass
    with flor.checkpointing(a=[1]):
        with pytest.raises(ValueError, match="already enrolled"):
            with flor.checkpointing(a=[2]):
                pass
    assert set(runtime.enrolled) == set()


@pytest.mark.parametrize("obj,mutate", [
    ([1, 2], lambda o: o.append(3)),
    ({"a": 1}, lambda o: o.update(b=2)),
    (np.arange(4.0), lambda o: o.__setitem__(0, 9.0)),
])
def test_state_roundtrip_in_place(obj, mutate):
    kind = state.kind_of(obj)
    data = state.serialize(state.capture(obj, kind), kind)
    before = repr(obj)
    mutate(obj)
    state.restore(obj, state.deserialize(data, kind), kind)
    assert repr(obj) == before


def test_pandas_frame_restored_in_place():
    import pandas as pd

    df = pd.DataFrame({"a": [1, 2]})
    ref = df
    data = state.serialize(state.capture(df, "pickle"), "pickle")
    df.loc[0, "a"] = 100
    df["b"] = 3
    state.restore(df, state.deserialize(data, "pickle"), "pickle")
    assert ref is df and df.equals(pd.DataFrame({"a": [1, 2]}))


class Averager:
    """A helper that holds a reference to another enrolled object (as an EMA holds a model)."""

    def __init__(self, weights):
        self.weights = weights
        self.mean = [1.0, 2.0]


def test_a_reference_to_another_enrolled_object_is_restored_as_that_object():
    weights = [0.5] * 1000
    helper = Averager(weights)
    enrolled = {"weights": weights, "helper": helper}
    data = state.serialize(state.capture(helper, "pickle", enrolled), "pickle")
    assert len(data) < len(state.capture(helper, "pickle"))  # the list is not copied in
    helper.mean.append(9.0)
    helper.weights = [0.0]
    state.restore(helper, state.deserialize(data, "pickle"), "pickle", enrolled)
    assert helper.weights is weights and helper.mean == [1.0, 2.0]
    assert state.unpickle(data).weights == state.Enrolled("weights")  # seen without them
    with pytest.raises(state.NotRestorableError, match="'weights', which is not enrolled"):
        state.restore(helper, data, "pickle", {"helper": helper})


KILL_SCRIPT = """
import numpy as np, flordb as flor
state = np.zeros(4_000_000)
with flor.checkpointing(state=state):
    for i in flor.loop("epoch", range(100000)):
        state += 1
        print(i, flush=True)
"""


def test_sigkill_during_background_writes_never_leaves_a_trusted_broken_checkpoint(repo):
    write_script(repo, KILL_SCRIPT, "kill.py")
    env = {**os.environ, "FLORDB_ECHO": "0", "FLORDB_EPSILON": "1000"}
    for delay in (0.5, 0.9, 1.3):
        proc = subprocess.Popen([sys.executable, "kill.py"], cwd=repo, env=env,
                                stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    root = repo
    conn = sqlite3.connect(root / ".flor" / "flor.db")
    rows = conn.execute("SELECT run_id, loop_id, iter, object FROM checkpoints"
                        " WHERE name = 'state'").fetchall()
    assert rows, "no checkpoint was completed before the kills"
    store = root / ".flor"
    for run_id, loop_id, it, digest in rows:
        data = objects.get(store, digest)  # raises if torn
        arr = state.deserialize(data, "numpy")
        assert (arr == it).all()  # the state at the start of iteration `it`
    # a damaged latest checkpoint is skipped in favour of an earlier one
    run_id, loop_id = rows[0][0], rows[0][1]
    iters = sorted(r[2] for r in rows if r[0] == run_id and r[1] == loop_id)
    if len(iters) >= 2:
        last = [r[3] for r in rows if r[:3] == (run_id, loop_id, iters[-1])][0]
        path = store / "objects" / last[:2] / last
        path.write_bytes(path.read_bytes()[:-10])
        ck = checkpoint.load(root, connect_reader(root), run_id, loop_id, iters[-1])
        assert ck is not None and ck.iteration == iters[-2]


FORKS = """
import os, sys
import numpy as np
import flordb as flor

w = np.zeros(4)
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(2)):
        w += 1
pid = os.fork()
if pid == 0:  # a worker forked after checkpoints were taken: its run and checkpoints are its own
    v = np.ones(3)
    with flor.checkpointing(v=v):
        for step in flor.loop("step", range(2)):
            v += 1
            flor.log("child", float(v.sum()))
    flor.commit()
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_checkpoints_into_a_run_of_its_own(repo):
    proc = run_script(repo, FORKS, env={"FLORDB_EPSILON": "1e9"}, timeout=60)
    assert "child exit 0" in proc.stdout, proc.stderr
    conn = connect_reader(repo)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        owners = dict(conn.execute("SELECT name, COUNT(DISTINCT run_id) FROM checkpoints"
                                   " WHERE name IN ('w', 'v') GROUP BY name"))
        child_run = conn.execute("SELECT DISTINCT run_id FROM series WHERE name = 'child'"
                                 ).fetchall()
        v_runs = conn.execute("SELECT DISTINCT run_id FROM checkpoints WHERE name = 'v'"
                              ).fetchall()
        counted = conn.execute("SELECT checkpoints FROM loop_timing WHERE name = 'step'"
                               ).fetchall()
    finally:
        conn.close()
    assert owners == {"w": 1, "v": 1}
    assert v_runs == child_run  # the child's checkpoints belong to the child's run
    assert counted == [(2,)]  # counted by a checkpointer of the child's own, not the parent's
