"""Replay end to end: real git history, real child processes, values checked for equality.

Every test compares back-filled values with those of a *from-scratch* run of the same patched
old version (in a fresh project), so a replay that restores the wrong state, skips something
it needed or attaches values to the wrong context fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import git, make_repo, run_script

import flordb
from flordb.hindsight import analysis as A
from flordb.hindsight.plan import make_plan
from flordb.hindsight.replay import Report, execute
from flordb.store.db import connect_reader
from flordb.store.frames import dataframe

V1 = '''
import flordb as flor
import numpy as np

rng = np.random.default_rng(0)
X = rng.normal(size=(64, 4))
y = X @ np.array([1.0, -2.0, 0.5, 3.0])
w = np.zeros(4)
lr = flor.arg("lr", 0.01)
epochs = flor.arg("epochs", 5)
with flor.checkpointing(w=w, rng=rng):
    for epoch in flor.loop("epoch", range(epochs)):
        for step in flor.loop("step", range(8)):
            idx = rng.integers(0, 64, size=8)
            grad = X[idx].T @ (X[idx] @ w - y[idx]) / 8
            w -= lr * grad
            flor.log("loss", float(np.mean((X @ w - y) ** 2)))
        flor.log("val", float(np.mean((X @ w - y) ** 2)))
'''

# Renamed variables.
V2 = V1.replace("w = np.zeros", "weights = np.zeros").replace("w=w", "w=weights") \
    .replace("@ w ", "@ weights ").replace("w -= lr * grad", "weights -= lr * g") \
    .replace("grad = ", "g = ")

# The inner loop moved into a function.
V3 = '''
import flordb as flor
import numpy as np

rng = np.random.default_rng(0)
X = rng.normal(size=(64, 4))
y = X @ np.array([1.0, -2.0, 0.5, 3.0])
weights = np.zeros(4)
lr = flor.arg("lr", 0.01)
epochs = flor.arg("epochs", 5)


def train_epoch(weights, lr):
    for step in flor.loop("step", range(8)):
        idx = rng.integers(0, 64, size=8)
        g = X[idx].T @ (X[idx] @ weights - y[idx]) / 8
        weights -= lr * g
        flor.log("loss", float(np.mean((X @ weights - y) ** 2)))


with flor.checkpointing(w=weights, rng=rng):
    for epoch in flor.loop("epoch", range(epochs)):
        train_epoch(weights, lr)
        flor.log("val", float(np.mean((X @ weights - y) ** 2)))
'''

# A changed hyper-parameter and an extra (evaluation) loop.
V4 = V3.replace('flor.arg("lr", 0.01)', 'flor.arg("lr", 0.02)').replace(
    '''        flor.log("val", float(np.mean((X @ weights - y) ** 2)))
''', '''        err = 0.0
        for batch in flor.loop("eval", range(4)):
            part = slice(16 * batch, 16 * batch + 16)
            err += float(np.mean((X[part] @ weights - y[part]) ** 2))
        flor.log("val", err / 4)
''')

# Today's script: V4 plus the statements to back-fill, one per position.
TODAY = V4.replace('''weights = np.zeros(4)
''', '''weights = np.zeros(4)
flor.log("n_features", X.shape[1])
''').replace('''        weights -= lr * g
''', '''        flor.log("gnorm", float(np.linalg.norm(g)))
        weights -= lr * g
''').replace('''        train_epoch(weights, lr)
''', '''        flor.log("wnorm", float(np.linalg.norm(weights)))
        train_epoch(weights, lr)
        flor.log("wsum", float(weights.sum()))
''')

#: (version, --kwargs) of the recorded runs, in order.
HISTORY = [(V1, ()), (V1, ("lr=0.05",)), (V2, ()), (V3, ("epochs=4",)), (V4, ()),
           (V4, ("lr=0.03",))]


def record(repo: Path, history, env=None) -> None:
    for i, (code, kwargs) in enumerate(history):
        (repo / "train.py").write_text(code)
        git(repo, "add", "train.py")
        git(repo, "commit", "-q", "-m", f"v{i}", "--allow-empty")
        run_script(repo, None, *(("--kwargs", *kwargs) if kwargs else ()), env=env)


def git_state(repo: Path) -> tuple:
    """The user's repository as git sees it. The store's own files are left out: a replay
    writes its values there, and SQLite's -wal/-shm files come and go with connections."""
    status = git(repo, "status", "--porcelain", "--untracked-files=all", "--ignored")
    return (git(repo, "rev-parse", "HEAD"), git(repo, "symbolic-ref", "HEAD"),
            "".join(line for line in status.splitlines(keepends=True)
                    if not line[3:].startswith(".flor/")),
            git(repo, "stash", "list"), git(repo, "worktree", "list"),
            git(repo, "ls-files", "-s"), (repo / "train.py").read_text())


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    """A project with 6 runs of 4 versions; checkpoints every iteration except run 2's."""
    repo = make_repo(tmp_path_factory.mktemp("replay") / "proj")
    (repo / ".gitignore").write_text("data/\n")
    (repo / "data").mkdir()
    (repo / "data" / "big.bin").write_bytes(b"\0" * 10)  # ignored, so not in snapshots
    record(repo, HISTORY[:1], env={"FLORDB_EPSILON": "1e9"})
    record(repo, HISTORY[1:2], env={"FLORDB_EPSILON": "1e-9"})  # no checkpoints
    record(repo, HISTORY[2:], env={"FLORDB_EPSILON": "1e9"})
    (repo / "train.py").write_text(TODAY)  # today's edit, not committed
    return repo


def scratch_values(tmp: Path, source: str, kwargs, names) -> pd.DataFrame:
    """The values of ``names`` in a from-scratch run of ``source`` in a fresh project."""
    repo = make_repo(tmp)
    run_script(repo, source, *(("--kwargs", *kwargs) if kwargs else ()))
    return dataframe(repo, names)


def column(frame: pd.DataFrame, name: str) -> list[tuple]:
    """``(loop coordinates..., value)`` of every row holding ``name``, in order."""
    dims = [c for c in ("epoch", "step") if c in frame.columns]
    rows = frame.dropna(subset=[name])
    return [tuple(None if pd.isna(v) else v for v in r)
            for r in rows[dims + [name]].itertuples(index=False)]


def assert_equal_to_scratch(repo: Path, report: Report, names, tmp: Path,
                            history=HISTORY) -> None:
    """Each replayed run's values of ``names`` equal a from-scratch run's (``history`` gives
    each run's --kwargs, in run order)."""
    replayed = dataframe(repo, names)
    for n, rp in enumerate(report.plan.runs):
        kwargs = history[rp.run_id - 1][1]
        fresh = scratch_values(tmp / f"scratch{n}", rp.version.source, kwargs, names)
        mine = replayed[replayed["tstamp"] == rp.tstamp]
        for name in names:
            expected = column(fresh, name)
            assert expected, f"{name} not logged by the patched version of run {rp.run_id}"
            assert column(mine, name) == expected, (name, rp.run_id, rp.strategy)


def test_outer_loop_statements_skip_inner_loops_and_equal_scratch(history, tmp_path):
    before = git_state(history)
    plan = make_plan(history, ["wnorm", "wsum"], workers=2)
    assert [r.run_id for r in plan.runs] == [1, 2, 3, 4, 5, 6]
    assert len({v.blob for v in plan.versions}) == 4
    for rp in plan.runs:
        assert rp.positions == {"wnorm": A.HEAD, "wsum": A.AFTER_INNER}
    strategies = {rp.run_id: rp.strategy for rp in plan.runs}
    assert strategies[1].startswith("skip inner loops")
    assert strategies[2].startswith("run everything from the start (no checkpoints)")
    report = execute(history, plan, progress=False)
    assert report.ok, report.render()
    assert git_state(history) == before
    assert_equal_to_scratch(history, report, ["wnorm", "wsum"], tmp_path)
    # Recorded values were re-executed where the inner loops ran (run 2) and all agree.
    assert all(not r.divergences for r in report.runs)
    assert report.runs[1].compared > 0
    # Replaying again adds nothing.
    assert make_plan(history, ["wnorm", "wsum"], workers=2).units == []


def test_inner_and_prefix_statements_equal_scratch(history, tmp_path):
    plan = make_plan(history, ["gnorm", "n_features"], workers=12)
    by_run = {rp.run_id: rp for rp in plan.runs}
    assert by_run[1].positions == {"gnorm": A.INNER, "n_features": A.BEFORE}
    assert by_run[1].strategy == "run iterations from checkpoints"
    assert len(by_run[1].units) > 1  # split at checkpoints, run in parallel
    report = execute(history, plan, progress=False)
    assert report.ok, report.render()
    assert_equal_to_scratch(history, report, ["gnorm", "n_features"], tmp_path)
    # Every iteration ran in full: each recorded loss was recomputed and matched.
    losses = int(dataframe(history, ["loss"])["loss"].notna().sum())
    assert sum(r.compared for r in report.runs) >= losses
    assert all(not r.divergences for r in report.runs)


def test_where_filters_runs_by_recorded_values(history, tmp_path):
    names = ["wnorm2"]
    (history / "train.py").write_text(TODAY.replace(
        '        train_epoch(weights, lr)\n',
        '        train_epoch(weights, lr)\n        flor.log("wnorm2", float(weights @ weights))\n'))
    try:
        plan = make_plan(history, names, where="lr > 0.02")
        assert sorted(r.run_id for r in plan.runs) == [2, 6]
        report = execute(history, plan, progress=False)
        assert report.ok, report.render()
        frame = dataframe(history, names)
        filled = set(frame.dropna(subset=["wnorm2"])["tstamp"])
        assert filled == {r.tstamp for r in plan.runs}
        assert_equal_to_scratch(history, report, names, tmp_path)
    finally:
        (history / "train.py").write_text(TODAY)


def test_bad_where_is_a_clear_error(history):
    with pytest.raises(ValueError, match="--where"):
        make_plan(history, ["wnorm"], where="no_such_column > 1")


def test_deleted_checkpoints_replay_from_the_start(tmp_path):
    repo = make_repo(tmp_path / "proj")
    record(repo, HISTORY[:1], env={"FLORDB_EPSILON": "1e9"})
    conn = connect_reader(repo)
    assert conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] > 0
    conn.close()
    (repo / ".flor" / "objects").rename(repo / ".flor" / "gone")  # every object file lost
    (repo / "train.py").write_text(V1.replace(
        '            w -= lr * grad\n',
        '            w -= lr * grad\n            flor.log("step_w", float(w[0]))\n'))
    plan = make_plan(repo, ["step_w"])
    assert plan.runs[0].strategy == "run everything from the start (no checkpoints)"
    report = execute(repo, plan, progress=False)
    assert report.ok, report.render()
    assert_equal_to_scratch(repo, report, ["step_w"], tmp_path)


def test_failing_unit_is_reported_and_others_finish(tmp_path):
    repo = make_repo(tmp_path / "proj")
    record(repo, [(V1, ("epochs=2",)), (V1, ("lr=0", "epochs=2"))])
    (repo / "train.py").write_text(V1.replace(
        '        flor.log("val"', '        flor.log("inv_lr", 1 / lr)\n        flor.log("val"'))
    report = execute(repo, make_plan(repo, ["inv_lr"]), progress=False)
    assert not report.ok
    ok, failed = report.runs
    assert ok.units_done == 1 and not ok.failures
    assert failed.failures and "ZeroDivisionError" in failed.failures[0]
    frame = dataframe(repo, ["inv_lr"])
    assert frame.dropna(subset=["inv_lr"])["tstamp"].unique().tolist() == [ok.tstamp]
    # Nothing of the failed unit is left behind, and the next replay tries it again.
    conn = connect_reader(repo)
    assert conn.execute("SELECT COUNT(*) FROM series WHERE source = 'pending'"
                        ).fetchone()[0] == 0
    conn.close()
    assert [r.run_id for r in make_plan(repo, ["inv_lr"]).runs] == [failed.run_id]


def test_version_whose_propagation_fails_is_reported_and_the_rest_proceed(tmp_path):
    repo = make_repo(tmp_path / "proj")
    no_loop = '''
import flordb as flor
flor.log("val", 1.0)
'''
    record(repo, [(no_loop, ()), (V1, ("epochs=2",))])
    (repo / "train.py").write_text(V1.replace(
        '            w -= lr * grad\n',
        '            w -= lr * grad\n            flor.log("step_w", float(w[0]))\n'))
    plan = make_plan(repo, ["step_w"])
    failed = [v for v in plan.versions if v.error]
    assert len(failed) == 1 and "could be placed" in failed[0].error
    assert "failed" in plan.render()
    report = execute(repo, plan, progress=False)
    assert report.ok and [r.run_id for r in report.runs] == [2]
    assert_equal_to_scratch(repo, report, ["step_w"], tmp_path,
                            [(no_loop, ()), (V1, ("epochs=2",))])


PIPE_FEATURIZE = '''
import flordb as flor
import numpy as np

rng = np.random.default_rng(int(flor.arg("seed", 1)))
rows = rng.normal(size=(32, 3))
np.save("features.npy", rows)
for col in flor.loop("col", range(3)):
    flor.log("col_max", float(rows[:, col].max()))
'''

PIPE_TRAIN = '''
import flordb as flor
import numpy as np

rows = np.load("features.npy")
w = np.zeros(3)
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(3)):
        w += rows.mean(axis=0) * 0.1
        flor.log("w0", float(w[0]))
'''


def test_pipeline_of_two_scripts(tmp_path):
    repo = make_repo(tmp_path / "proj")
    (repo / ".gitignore").write_text("*.npy\n")
    for name, code in (("featurize.py", PIPE_FEATURIZE), ("train.py", PIPE_TRAIN)):
        (repo / name).write_text(code)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    for seed in ("1", "2"):
        run_script(repo, None, "--kwargs", f"seed={seed}", name="featurize.py")
        run_script(repo, None, name="train.py")
    (repo / "featurize.py").write_text(
        PIPE_FEATURIZE + 'flor.log("col_mean", float(rows.mean()))\n')
    (repo / "train.py").write_text(PIPE_TRAIN.replace(
        '        flor.log("w0"', '        flor.log("w1", float(w[1]))\n        flor.log("w0"'))
    plan = make_plan(repo, ["col_mean", "w1"])
    assert sorted((r.version.filename, r.names[0]) for r in plan.runs) == [
        ("featurize.py", "col_mean"), ("featurize.py", "col_mean"),
        ("train.py", "w1"), ("train.py", "w1")]
    report = execute(repo, plan, progress=False)
    # features.npy is ignored, so not in the snapshots: both train replays read the project's
    # current file (copied into their directories), the one the second train run read. The
    # first train run's state came from other features: its replay cannot follow the
    # recording, so it gets no value and the report says why.
    first_train = [r for r in report.runs if r.run_id == 2][0]
    assert "RECORDING DIFFERS at iteration 1" in first_train.not_written, report.render()
    assert not report.ok
    assert all(not r.not_written and not r.failures for r in report.runs if r.run_id != 2)
    frame = dataframe(repo, ["col_mean", "w1"])
    assert frame["col_mean"].notna().sum() == 2
    rows, w, expected = np.load(repo / "features.npy"), np.zeros(3), []
    for _ in range(3):
        w += rows.mean(axis=0) * 0.1
        expected.append(float(w[1]))
    per_run = frame.dropna(subset=["w1"]).groupby("tstamp", sort=True)["w1"].apply(list)
    assert per_run.tolist() == [expected]  # the second train run only


def test_cli_dry_run_shows_plan_and_patch_and_runs_nothing(history):
    proc = subprocess.run(["flordb", "replay", "gnorm2", "--dry-run"], cwd=history,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "skipped train.py: today's version logs none of these names" in proc.stdout
    (history / "train.py").write_text(TODAY.replace('flor.log("gnorm"', 'flor.log("gnorm3"'))
    try:
        proc = subprocess.run(["flordb", "replay", "gnorm3", "--dry-run"], cwd=history,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "+        flor.log(\"gnorm3\"" in proc.stdout
        assert "inside an inner loop" in proc.stdout
        proc = subprocess.run(["flordb", "replay", "gnorm3"], cwd=history, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL)
        assert proc.returncode == 2 and "--yes" in proc.stderr
        conn = connect_reader(history)
        assert conn.execute("SELECT COUNT(*) FROM records WHERE name = 'gnorm3' UNION ALL "
                            "SELECT COUNT(*) FROM series WHERE name = 'gnorm3'"
                            ).fetchall() == [(0,), (0,)]
        conn.close()
    finally:
        (history / "train.py").write_text(TODAY)


TORCH_V1 = '''
import flordb as flor
import torch

torch.manual_seed(0)
torch.set_num_threads(1)
X = torch.randn(64, 5)
y = X @ torch.randn(5, 1)
model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
opt = torch.optim.Adam(model.parameters(), lr=flor.arg("lr", 0.01))
with flor.checkpointing(model=model, opt=opt):
    for epoch in flor.loop("epoch", range(4)):
        for i in flor.loop("step", range(0, 64, 16)):
            perm = torch.randperm(64)[:16]
            loss = torch.nn.functional.mse_loss(model(X[perm]), y[perm])
            opt.zero_grad()
            loss.backward()
            opt.step()
            flor.log("loss", loss.item())
'''

TORCH_V2 = TORCH_V1.replace("model", "net").replace("Tanh", "ReLU")


def test_torch_model_replay_equals_scratch(tmp_path):
    pytest.importorskip("torch")
    repo = make_repo(tmp_path / "proj")
    record(repo, [(TORCH_V1, ()), (TORCH_V2, ("lr=0.05",))], env={"FLORDB_EPSILON": "1e9"})
    today = TORCH_V2.replace('''    for epoch in flor.loop("epoch", range(4)):
''', '''    for epoch in flor.loop("epoch", range(4)):
        flor.log("w_norm", float(net[0].weight.norm()))
''').replace('''            opt.step()
''', '''            opt.step()
            flor.log("grad0", float(net[0].weight.grad.abs().sum()))
''')
    (repo / "train.py").write_text(today)
    before = git_state(repo)
    plan = make_plan(repo, ["w_norm"])
    assert all(r.strategy.startswith("skip inner loops") for r in plan.runs)
    report = execute(repo, plan, progress=False)
    assert report.ok, report.render()
    assert_equal_to_scratch(repo, report, ["w_norm"], tmp_path / "a")
    report = execute(repo, make_plan(repo, ["grad0"]), progress=False)
    assert report.ok, report.render()
    assert all(r.compared >= 16 and not r.divergences for r in report.runs)
    assert_equal_to_scratch(repo, report, ["grad0"], tmp_path / "b")
    assert git_state(repo) == before


def test_api_replay_and_divergence_is_visible(tmp_path, monkeypatch):
    """flor.replay from Python; a replay that does not follow the recording keeps nothing
    and says so."""
    repo = make_repo(tmp_path / "proj")
    nondeterministic = V1.replace("rng = np.random.default_rng(0)",
                                  "rng = np.random.default_rng()")
    record(repo, [(nondeterministic, ("epochs=2",))])
    (repo / "train.py").write_text(nondeterministic.replace(
        '        flor.log("val"', '        flor.log("w0", float(w[0]))\n        flor.log("val"'))
    monkeypatch.chdir(repo)
    monkeypatch.setattr(flordb._rt, "project", None)
    report = flordb.replay("w0", progress=False)
    assert not report.ok  # a replay that cannot follow its run writes nothing and says so
    (run,) = report.runs
    assert run.not_written and "no value written" in report.render()
    assert "w0" not in flordb.dataframe("val").columns


def test_ctrl_c_stops_children_and_leaves_nothing(tmp_path):
    repo = make_repo(tmp_path / "proj")
    pids, hang = tmp_path / "pids", tmp_path / "hang"
    slow = f'''
import os, time
import flordb as flor
for epoch in flor.loop("epoch", range(3)):
    flor.log("x", epoch)
    if os.path.exists({str(hang)!r}):  # only once the test says so: in the replay
        with open({str(pids)!r}, "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        time.sleep(60)
'''
    record(repo, [(slow, ())])
    hang.touch()
    (repo / "train.py").write_text(slow.replace(
        '    flor.log("x", epoch)\n', '    flor.log("x", epoch)\n    flor.log("y", epoch)\n'))
    before = git_state(repo)
    driver = subprocess.Popen(["flordb", "replay", "y", "--yes"], cwd=repo,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (pids.exists() and pids.read_text().strip()):
        assert time.monotonic() < deadline and driver.poll() is None, driver.communicate()
        time.sleep(0.1)
    child = int(pids.read_text().split()[0])
    driver.send_signal(signal.SIGINT)
    assert driver.wait(timeout=30) == 130
    assert b"interrupted" in driver.stderr.read()
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    assert git_state(repo) == before
    conn = connect_reader(repo)
    assert conn.execute("SELECT status FROM replay_units").fetchall() == [("failed",)]
    assert conn.execute("SELECT COUNT(*) FROM series WHERE source = 'pending'"
                        ).fetchone()[0] == 0
    conn.close()


def test_statement_by_line(history):
    line = next(i for i, text in enumerate(TODAY.splitlines(), 1) if '"wnorm"' in text)
    plan = make_plan(history, [f"train.py@{line}"])
    assert plan.names == ["wnorm"]
    with pytest.raises(ValueError, match="no flor.log statement at line 1 in train.py"):
        make_plan(history, ["train.py@1"])
    with pytest.raises(ValueError, match="SCRIPT@LINE"):
        make_plan(history, ["train.py@x"])


def test_statement_after_the_loops_fast_forwards_to_the_last_checkpoint(tmp_path):
    repo = make_repo(tmp_path / "proj")
    history = [(V1, ("epochs=3",)), (V1, ("epochs=3", "lr=0.05"))]
    record(repo, history, env={"FLORDB_EPSILON": "1e9"})
    (repo / "train.py").write_text(V1 + 'flor.log("final_w", float(w.sum()))\n')
    plan = make_plan(repo, ["final_w"])
    assert {r.positions["final_w"] for r in plan.runs} == {A.AFTER}
    assert all(r.strategy == "fast-forward to the last checkpoint, run the rest"
               for r in plan.runs)
    assert all(u.restore_from == 3 and u.start == 3 for r in plan.runs for u in r.units)
    report = execute(repo, plan, progress=False)
    assert report.ok, report.render()
    assert_equal_to_scratch(repo, report, ["final_w"], tmp_path, history)


def test_a_replay_that_died_is_cleaned_up_and_resumed(tmp_path):
    import sqlite3

    from flordb.store.db import store_dir

    repo = make_repo(tmp_path / "proj")
    history = [(V1, ("epochs=6",))]
    record(repo, history, env={"FLORDB_EPSILON": "1e9"})
    (repo / "train.py").write_text(V1.replace(
        '            w -= lr * grad\n',
        '            w -= lr * grad\n            flor.log("step_w", float(w[0]))\n'))
    plan = make_plan(repo, ["step_w"], workers=3)
    assert [(u.start, u.stop) for u in plan.runs[0].units] == [(0, 2), (2, 4), (4, 6)]
    assert (plan.runs[0].verify.start, plan.runs[0].verify.restore_from) == (2, 1)
    report = execute(repo, plan, progress=False)
    assert report.ok
    # Pretend the replay's driver was killed while the middle unit ran: its values pending.
    dead = subprocess.Popen(["true"])
    dead.wait()
    db = sqlite3.connect(store_dir(repo) / "flor.db")
    middle = plan.units[1].unit_id
    db.execute("UPDATE replays SET pid = ?", (dead.pid,))
    db.execute("UPDATE replay_units SET status = 'running' WHERE unit_id = ?", (middle,))
    for table in ("series", "records"):
        db.execute(f"UPDATE {table} SET source = 'pending' WHERE unit = ?", (middle,))
    db.commit()
    db.close()
    frame = dataframe(repo, ["step_w"])
    assert sorted(frame.dropna(subset=["step_w"])["epoch"].unique()) == [1, 2, 5, 6]
    again = make_plan(repo, ["step_w"], workers=3)
    ranges = [(u.start, u.stop) for u in again.runs[0].units]
    assert ranges[0][0] == 2 and ranges[-1][1] == 4  # only what is missing, in pieces
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    report = execute(repo, again, progress=False)
    assert report.ok
    conn = connect_reader(repo)
    assert conn.execute("SELECT status, error FROM replay_units WHERE unit_id = ?",
                        (middle,)).fetchone() == ("failed", "the replay that ran it ended first")
    assert conn.execute("SELECT COUNT(*) FROM series WHERE source = 'pending'").fetchone()[0] == 0
    conn.close()
    assert_equal_to_scratch(repo, report, ["step_w"], tmp_path, history)


def test_skipping_units_split_across_workers_equal_scratch(tmp_path):
    repo = make_repo(tmp_path / "proj")
    history = [(V1, ("epochs=6",))]
    record(repo, history, env={"FLORDB_EPSILON": "1e9"})
    (repo / "train.py").write_text(V1.replace(
        '        flor.log("val"', '        flor.log("w1", float(w[1]))\n        flor.log("val"'))
    plan = make_plan(repo, ["w1"], workers=3)
    assert plan.runs[0].strategy.startswith("skip inner loops")
    assert len(plan.runs[0].units) == 3 and plan.runs[0].verify is not None
    report = execute(repo, plan, progress=False)
    assert report.ok and not report.runs[0].divergences and report.runs[0].compared == 6
    assert "values agree" in report.runs[0].cross_check and not report.runs[0].fell_back
    assert_equal_to_scratch(repo, report, ["w1"], tmp_path, history)


def test_replay_does_not_write_lifecycle_records_again(tmp_path):
    repo = make_repo(tmp_path / "proj")
    labeller = '''
import flordb as flor
topic = flor.feature("topic", record_type="doc", columns={"value": str})
for i in flor.loop("doc", range(3)):
    topic.add(f"d{i}", value="news")
    flor.log("i", i)
'''
    record(repo, [(labeller, ())])
    before = flor_query(repo, "SELECT record_id, run_id, created FROM feature_values")
    (repo / "train.py").write_text(labeller.replace(
        '    flor.log("i", i)\n', '    flor.log("i", i)\n    flor.log("j", -i)\n'))
    report = execute(repo, make_plan(repo, ["j"]), progress=False)
    assert report.ok, report.render()
    assert dataframe(repo, ["j"])["j"].tolist() == [0, -1, -2]
    assert flor_query(repo, "SELECT record_id, run_id, created FROM feature_values") == before


def flor_query(repo, sql):
    conn = connect_reader(repo)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_a_loop_entered_several_times_is_replayed_in_full(tmp_path):
    repo = make_repo(tmp_path / "proj")
    trials = '''
import flordb as flor
for trial in range(2):
    total = 0.0
    for epoch in flor.loop("epoch", range(3)):
        total += trial + epoch
        flor.log("total", total)
'''
    history = [(trials, ())]
    record(repo, history, env={"FLORDB_EPSILON": "1e9"})
    (repo / "train.py").write_text(trials.replace(
        '        flor.log("total", total)\n',
        '        flor.log("total", total)\n        flor.log("double", 2 * total)\n'))
    plan = make_plan(repo, ["double"])
    assert plan.runs[0].strategy == "run everything from the start (several outermost loops)"
    report = execute(repo, plan, progress=False)
    assert report.ok, report.render()
    frame = dataframe(repo, ["total", "double"])
    assert len(frame) == 6 and (frame["double"] == 2 * frame["total"]).all()
    assert report.runs[0].compared == 6 and not report.runs[0].divergences
