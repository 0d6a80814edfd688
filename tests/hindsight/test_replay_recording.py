"""Replay checked against the recording: the failure classes of training code written the way
real training code is written (an LR milestone at a global step count kept on the model,
counters on modules, a scheduler nobody enrolled, state hidden in a helper module, args that
switch a code path, unseeded randomness). Every test asserts that each back-filled value
equals a from-scratch run of the patched version, or that it is not written and the report
says why."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import git, make_repo, run_script
from test_replay import column

from flordb.hindsight.plan import make_plan
from flordb.hindsight.replay import Report, execute
from flordb.store.db import connect_reader
from flordb.store.frames import dataframe

TRAIN = '''
import flordb as flor
import torch

torch.manual_seed(0)
torch.set_num_threads(1)
X = torch.randn(48, 4)
y = (X @ torch.randn(4, 1)).squeeze(1)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 1)
        self.steps = 0       # global step count, kept on the model
        self.confident = 0   # a counter that only a later statement reads

    def forward(self, x):
        return self.fc(x).squeeze(1)


net = Net()
opt = torch.optim.SGD(net.parameters(), lr=0.1)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
clip = flor.arg("clip", 0.0)
with flor.checkpointing(net=net, opt=opt):
    for epoch in flor.loop("epoch", range(6)):
        for i in flor.loop("step", range(4)):
            idx = torch.randperm(48)[:12]
            out = net(X[idx])
            loss = torch.nn.functional.mse_loss(out, y[idx])
            opt.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
            net.steps += 1
            net.confident += int((out - y[idx]).abs().lt(0.5).sum())
            if net.steps == 9:  # the milestone: a tenth of the learning rate from step 9
                for g in opt.param_groups:
                    g["lr"] *= 0.1
        sched.step()
        flor.log("bias", float(net.fc.bias))
'''
ENROLLED = TRAIN.replace("flor.checkpointing(net=net, opt=opt)",
                         "flor.checkpointing(net=net, opt=opt, sched=sched)")
HEAD = '''    for epoch in flor.loop("epoch", range(6)):
'''
STEP = '''            opt.step()
'''
RUNS = [(), ("clip=0.05",)]


def record(repo: Path, source: str, runs=RUNS, extra: dict[str, str] | None = None) -> None:
    for name, text in (extra or {}).items():
        (repo / name).write_text(text)
    (repo / "train.py").write_text(source)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "train")
    for kwargs in runs:
        run_script(repo, None, *(("--kwargs", *kwargs) if kwargs else ()),
                   env={"FLORDB_EPSILON": "1e9"})  # a checkpoint every epoch


def assert_equal_to_scratch(repo: Path, report: Report, names, tmp: Path, runs=RUNS,
                            extra: dict[str, str] | None = None) -> None:
    """Every value of ``names`` in every replayed run equals a from-scratch run's."""
    replayed = dataframe(repo, names)
    for n, rp in enumerate(report.plan.runs):
        fresh_repo = make_repo(tmp / f"scratch{n}")
        for name, text in (extra or {}).items():
            (fresh_repo / name).write_text(text)
        kwargs = runs[rp.run_id - 1]
        run_script(fresh_repo, rp.version.source, *(("--kwargs", *kwargs) if kwargs else ()))
        fresh = dataframe(fresh_repo, names)
        mine = replayed[replayed["tstamp"] == rp.tstamp]
        for name in names:
            expected = column(fresh, name)
            assert expected, f"{name} not logged by the patched version of run {rp.run_id}"
            assert column(mine, name) == expected, (name, rp.run_id, rp.strategy)


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory) -> Path:
    """Two runs (clipping off and on) of a model that keeps its step count and a counter as
    attributes, with its scheduler enrolled."""
    pytest.importorskip("torch")
    repo = make_repo(tmp_path_factory.mktemp("recording") / "proj")
    record(repo, ENROLLED)
    return repo


def test_a_milestone_at_a_step_count_kept_on_the_model_in_parallel_units(enrolled, tmp_path):
    """A per-step statement replayed in units that restore middle checkpoints: the model's
    ``steps`` attribute is in its checkpoint, so each unit crosses the milestone where the
    run did, and each unit's state equals the recording at the boundary it reaches."""
    (enrolled / "train.py").write_text(ENROLLED.replace(STEP, STEP + '''\
            flor.log("lr_step", opt.param_groups[0]["lr"])
'''))
    plan = make_plan(enrolled, ["lr_step"], workers=6)
    assert all(r.strategy == "run iterations from checkpoints" for r in plan.runs)
    assert all(len(r.units) == 3 for r in plan.runs)
    assert all(u.restore_from for r in plan.runs for u in r.units[1:])
    report = execute(enrolled, plan, progress=False)
    assert report.ok, report.render()
    assert not any(r.fell_back for r in report.runs), report.render()
    assert all(r.recording_agreed >= 5 for r in report.runs), report.render()
    assert "equals the recording's checkpoint" in report.render()
    assert_equal_to_scratch(enrolled, report, ["lr_step"], tmp_path)
    lrs = dataframe(enrolled, ["lr_step"])["lr_step"].tolist()
    assert len(set(lrs)) > 2  # the milestone and the schedule both show


def test_a_counter_on_an_enrolled_module_is_restored(enrolled, tmp_path):
    """``net.confident`` grows in the skipped step loop; the module's checkpoint holds its
    plain attributes, so the skipped replay reads the right count in every epoch. Runs of
    different args each get a cross-check."""
    (enrolled / "train.py").write_text(ENROLLED.replace(HEAD, HEAD + '''\
        flor.log("confident", net.confident)
'''))
    plan = make_plan(enrolled, ["confident"], workers=2)
    assert all(r.strategy.startswith("skip inner loops") for r in plan.runs)
    assert all(r.verify is not None for r in plan.runs)  # clip differs: both are checked
    assert make_plan(enrolled, ["confident"], workers=2, verify="version").runs[1].verify \
        is None
    report = execute(enrolled, plan, progress=False)
    assert report.ok, report.render()
    assert not any(r.fell_back for r in report.runs), report.render()
    assert_equal_to_scratch(enrolled, report, ["confident"], tmp_path)
    counts = dataframe(enrolled, ["confident"])["confident"].tolist()
    assert counts[0] == 0 and counts[5] > 0


def test_a_statement_after_the_loops_restores_the_last_checkpoint(enrolled, tmp_path):
    """It reads what the recording checkpointed when the loop ended: no iteration runs and
    nothing falls back."""
    (enrolled / "train.py").write_text(ENROLLED + '''\
flor.log("final_steps", net.steps)
flor.log("final_bias", float(net.fc.bias))
''')
    plan = make_plan(enrolled, ["final_steps", "final_bias"], workers=2)
    assert all(r.strategy.startswith("fast-forward to the last checkpoint") for r in plan.runs)
    report = execute(enrolled, plan, progress=False)
    assert report.ok, report.render()
    assert not any(r.fell_back for r in report.runs), report.render()
    assert_equal_to_scratch(enrolled, report, ["final_steps", "final_bias"], tmp_path)


def test_an_unenrolled_scheduler_makes_the_replay_execute(tmp_path):
    """``sched`` writes the enrolled optimizer's learning rate; nobody enrolled it, so a
    unit started from a checkpoint would decay at the wrong epochs. The analysis follows the
    write back into ``opt`` and executes from the start."""
    pytest.importorskip("torch")
    repo = make_repo(tmp_path / "proj")
    record(repo, TRAIN, runs=RUNS[:1])
    (repo / "train.py").write_text(TRAIN.replace(STEP, STEP + '''\
            flor.log("lr_step", opt.param_groups[0]["lr"])
'''))
    plan = make_plan(repo, ["lr_step"], workers=4)
    assert plan.runs[0].strategy.startswith("run everything from the start"), plan.render()
    assert "sched" in plan.runs[0].strategy
    report = execute(repo, plan, progress=False)
    assert report.ok, report.render()
    assert report.runs[0].recording_agreed == 6  # every boundary, executed from the start
    assert_equal_to_scratch(repo, report, ["lr_step"], tmp_path, runs=RUNS[:1])


HELPERS = '''
SEEN = {"steps": 0}


def lr_factor():
    """A warm-up kept in a module global: no analysis of the script sees it."""
    SEEN["steps"] += 1
    return min(1.0, SEEN["steps"] / 10)
'''
HIDDEN = '''
import flordb as flor
import numpy as np

import helpers

rng = np.random.default_rng(0)
X = rng.normal(size=(40, 3))
y = X @ np.array([1.0, -1.0, 2.0])
w = np.zeros(3)
with flor.checkpointing(w=w, rng=rng):
    for epoch in flor.loop("epoch", range(6)):
        for step in flor.loop("step", range(5)):
            idx = rng.integers(0, 40, size=8)
            w -= 0.05 * helpers.lr_factor() * X[idx].T @ (X[idx] @ w - y[idx]) / 8
        flor.log("loss", float(np.mean((X @ w - y) ** 2)))
'''
INNER = '''            w -= 0.05 * helpers.lr_factor() * X[idx].T @ (X[idx] @ w - y[idx]) / 8
'''


def test_state_hidden_in_a_helper_module_is_caught_by_the_recording(tmp_path):
    """The warm-up counter lives in ``helpers.SEEN``: the analysis lets units start from
    checkpoints, a unit restarting the counter trains differently, its state differs from the
    recording's checkpoint at the next boundary, and the run falls back to executing from the
    start; every value then equals a from-scratch run."""
    repo = make_repo(tmp_path / "proj")
    extra = {"helpers.py": HELPERS}
    record(repo, HIDDEN, runs=[()], extra=extra)
    (repo / "train.py").write_text(HIDDEN.replace(INNER, INNER + '''\
            flor.log("w0", float(w[0]))
'''))
    plan = make_plan(repo, ["w0"], workers=3)
    assert plan.runs[0].strategy == "run iterations from checkpoints"
    report = execute(repo, plan, progress=False)
    assert report.ok, report.render()
    outcome = report.runs[0]
    assert "RECORDING DIFFERS at iteration" in outcome.fell_back, report.render()
    assert "w" in outcome.fell_back and "max |diff|" in outcome.fell_back
    assert "fell back to executing every iteration" in report.render()
    assert not outcome.not_written
    assert_equal_to_scratch(repo, report, ["w0"], tmp_path, runs=[()], extra=extra)
    conn = connect_reader(repo)
    checks = dict(conn.execute("SELECT name, differing FROM replay_checks").fetchall())
    conn.close()
    assert checks.get("recording w") == 1  # the web view's replay page lists it
    from flordb.ui import create_app

    page = create_app(repo).test_client().get("/replays").get_data(as_text=True)
    assert "recording w" in page


def test_state_hidden_from_the_checkpoint_and_the_training_is_caught_by_the_cross_check(
        tmp_path):
    """A statement at the head of the epoch reads the helper module's counter, which no
    checkpoint holds and which changes nothing the recording checkpointed: only executing
    what the replay skips can see it. The cross-check does, and the run falls back."""
    repo = make_repo(tmp_path / "proj")
    extra = {"helpers.py": HELPERS}
    counting = HIDDEN.replace(INNER, "            helpers.lr_factor()  # counts steps only\n"
                              + INNER.replace("helpers.lr_factor()", "1.0"))
    record(repo, counting, runs=[()], extra=extra)
    (repo / "train.py").write_text(counting.replace(
        "    for epoch in flor.loop(\"epoch\", range(6)):\n",
        "    for epoch in flor.loop(\"epoch\", range(6)):\n"
        "        flor.log(\"seen\", helpers.SEEN[\"steps\"])\n"))
    plan = make_plan(repo, ["seen"], workers=2)
    assert plan.runs[0].strategy.startswith("skip inner loops")
    report = execute(repo, plan, progress=False)
    assert report.ok, report.render()
    assert "DISAGREES" in report.runs[0].cross_check
    assert "DISAGREES" in report.runs[0].fell_back
    assert_equal_to_scratch(repo, report, ["seen"], tmp_path, runs=[()], extra=extra)


UNSEEDED = HIDDEN.replace("rng = np.random.default_rng(0)", "rng = np.random.default_rng()")


def test_a_run_that_cannot_be_reproduced_gets_no_value(tmp_path):
    """Unseeded randomness: even from the start the replay's state differs from the
    recording's at the first boundary. No value is written, the report says why, and the
    replay is not ok (the command line exits 1)."""
    repo = make_repo(tmp_path / "proj")
    record(repo, UNSEEDED, runs=[()], extra={"helpers.py": HELPERS})
    (repo / "train.py").write_text(UNSEEDED.replace(INNER, INNER + '''\
            flor.log("w0", float(w[0]))
'''))
    report = execute(repo, make_plan(repo, ["w0"], workers=2), progress=False)
    assert not report.ok
    assert "RECORDING DIFFERS at iteration 1" in report.runs[0].not_written, report.render()
    assert "no value written" in report.render()
    assert "w0" not in dataframe(repo, ["loss"]).columns


SWITCHED = '''
import flordb as flor
import numpy as np

import helpers

rng = np.random.default_rng(0)
X = rng.normal(size=(40, 3))
y = X @ np.array([1.0, -1.0, 2.0])
w = np.zeros(3)
clip = flor.arg("clip", 0.0)
with flor.checkpointing(w=w, rng=rng):
    for epoch in flor.loop("epoch", range(5)):
        for step in flor.loop("step", range(4)):
            idx = rng.integers(0, 40, size=8)
            g = X[idx].T @ (X[idx] @ w - y[idx]) / 8
            if clip:
                helpers.lr_factor()  # counts the clipped steps in a module global
                g = np.clip(g, -clip, clip)
            w -= 0.05 * g
        flor.log("loss", float(np.mean((X @ w - y) ** 2)))
'''


def test_runs_whose_args_switch_a_code_path_are_each_checked(tmp_path):
    """Only the run with clipping on counts its clipped steps in hidden state; the statement at
    the epoch head reads that count. A cross-check of the first run only would agree and leave
    the second run's values wrong; ``clip`` decides a branch, so each run is checked, the
    second one's check disagrees, and every value equals a from-scratch run."""
    repo = make_repo(tmp_path / "proj")
    extra = {"helpers.py": HELPERS}
    runs = [(), ("clip=0.5",)]
    record(repo, SWITCHED, runs=runs, extra=extra)
    (repo / "train.py").write_text(SWITCHED.replace(
        '    for epoch in flor.loop("epoch", range(5)):\n',
        '    for epoch in flor.loop("epoch", range(5)):\n'
        '        flor.log("clipped", helpers.SEEN["steps"])\n'))
    assert make_plan(repo, ["clipped"], verify="version").runs[1].verify is None
    plan = make_plan(repo, ["clipped"], workers=2)
    assert all(r.strategy.startswith("skip inner loops") for r in plan.runs)
    assert all(r.verify is not None for r in plan.runs)
    report = execute(repo, plan, progress=False)
    assert report.ok, report.render()
    assert "values agree" in report.runs[0].cross_check
    assert "DISAGREES" in report.runs[1].cross_check
    assert all(r.fell_back for r in report.runs)  # the version's analysis missed something
    assert_equal_to_scratch(repo, report, ["clipped"], tmp_path, runs=runs, extra=extra)
    assert dataframe(repo, ["clipped"])["clipped"].tolist()[-1] == 16


EMA = TRAIN.replace('''clip = flor.arg("clip", 0.0)
''', '''clip = flor.arg("clip", 0.0)


class EMA:
    """An exponential moving average of a model's weights, as training code keeps one: it
    holds a reference to the enrolled model and a copy of its parameters."""

    def __init__(self, model, decay=0.9):
        self.model = model
        self.decay = decay
        self.shadow = [p.detach().clone() for p in model.parameters()]

    def update(self):
        with torch.no_grad():
            for s, p in zip(self.shadow, self.model.parameters()):
                s.mul_(self.decay).add_(p, alpha=1 - self.decay)


ema = EMA(net)
''').replace('''            opt.step()
''', '''            opt.step()
            ema.update()
''')


def test_an_ema_helper_nobody_enrolled_is_executed_not_restored(tmp_path):
    """``ema`` holds the enrolled model and a shadow copy of its weights, updated every step;
    no checkpoint holds the shadow. A statement at the epoch head reading it cannot skip the
    step loop nor start from a checkpoint: every value equals a from-scratch run."""
    pytest.importorskip("torch")
    repo = make_repo(tmp_path / "proj")
    record(repo, EMA, runs=RUNS[:1])
    (repo / "train.py").write_text(EMA.replace(HEAD, HEAD + '''\
        flor.log("ema_bias", float(ema.shadow[1]))
'''))
    plan = make_plan(repo, ["ema_bias"], workers=3)
    assert plan.runs[0].strategy.startswith("run everything from the start"), plan.render()
    assert "ema" in plan.runs[0].strategy
    report = execute(repo, plan, progress=False)
    assert report.ok, report.render()
    assert_equal_to_scratch(repo, report, ["ema_bias"], tmp_path, runs=RUNS[:1])
    values = dataframe(repo, ["ema_bias"])["ema_bias"].tolist()
    assert len(set(values)) == len(values) == 6  # it moves every epoch


def test_an_enrolled_ema_helper_keeps_its_reference_to_the_model(tmp_path):
    """Enrolled beside the model it averages, ``ema`` is restored in place: its ``model``
    is still the script's ``net`` after a unit restores a middle checkpoint, so the units that
    execute steps from checkpoints average the weights being trained, agree with the
    recording at every boundary, and every per-step value equals a from-scratch run."""
    pytest.importorskip("torch")
    repo = make_repo(tmp_path / "proj")
    source = EMA.replace("flor.checkpointing(net=net, opt=opt)",
                         "flor.checkpointing(net=net, opt=opt, sched=sched, ema=ema)")
    record(repo, source, runs=RUNS[:1])
    (repo / "train.py").write_text(source.replace(STEP + "            ema.update()\n",
                                                  STEP + "            ema.update()\n" + '''\
            flor.log("ema_step", float(ema.shadow[1]))
'''))
    plan = make_plan(repo, ["ema_step"], workers=3)
    report = execute(repo, plan, progress=False)
    assert report.ok, report.render()
    assert_equal_to_scratch(repo, report, ["ema_step"], tmp_path, runs=RUNS[:1])
