"""Replays whose values a paper can cite: gradients restored, hidden state caught by the
cross-check, the run's surroundings (``../data``, its environment) as they were. Every test
compares with a from-scratch run of the patched version."""

from __future__ import annotations

import pytest
from conftest import make_repo
from test_replay import assert_equal_to_scratch, record

from flordb.hindsight.plan import make_plan
from flordb.hindsight.replay import execute

TORCH = '''
import flordb as flor
import torch

torch.manual_seed(0)
torch.set_num_threads(1)
X = torch.randn(64, 5)
y = X @ torch.randn(5, 1)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(),
                                        torch.nn.Linear(8, 1))
        self.seen = 0  # an attribute: no state_dict holds it

    def forward(self, x):
        self.seen += x.shape[0]
        return self.body(x)


net = Net()
opt = torch.optim.SGD(net.parameters(), lr=flor.arg("lr", 0.05))
with flor.checkpointing(net=net, opt=opt):
    for epoch in flor.loop("epoch", range(5)):
        for i in flor.loop("step", range(0, 64, 16)):
            perm = torch.randperm(64)[:16]
            loss = torch.nn.functional.mse_loss(net(X[perm]), y[perm])
            opt.zero_grad()
            loss.backward()
            opt.step()
            flor.log("loss", loss.item())
'''
HISTORY = [(TORCH, ()), (TORCH, ("lr=0.1",))]
INNER_LOG = '''            flor.log("loss", loss.item())
'''
HEAD = '''    for epoch in flor.loop("epoch", range(5)):
'''


def recorded(tmp_path):
    pytest.importorskip("torch")
    repo = make_repo(tmp_path / "proj")
    record(repo, HISTORY, env={"FLORDB_EPSILON": "1e9"})  # a checkpoint every epoch
    return repo


def test_gradient_norm_at_the_epoch_head_equals_scratch(tmp_path):
    """FlorDB's README statement: the gradients the skipped inner loop left are restored."""
    repo = recorded(tmp_path)
    (repo / "train.py").write_text(TORCH.replace(HEAD, HEAD + '''\
        flor.log("gradient_norm",
                 float(torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=1e9)))
'''))
    plan = make_plan(repo, ["gradient_norm"], workers=2)
    assert all(r.strategy.startswith("skip inner loops") for r in plan.runs)
    report = execute(repo, plan, progress=False)
    assert report.ok, report.render()
    assert "values agree" in report.runs[0].cross_check, report.render()
    assert not any(r.fell_back for r in report.runs)
    assert_equal_to_scratch(repo, report, ["gradient_norm"], tmp_path, HISTORY)
    from flordb.store.frames import dataframe

    norms = dataframe(repo, ["gradient_norm"])["gradient_norm"].tolist()
    assert len(norms) == 10 and all(v > 0 for i, v in enumerate(norms) if i % 5)


def test_a_module_attribute_is_restored_with_the_module(tmp_path):
    """``net.seen`` grows in the skipped inner loop and no state_dict holds it; the module's
    checkpoint keeps its plain attributes, so the skipped replay reads the count the run
    had, and the cross-check agrees."""
    repo = recorded(tmp_path)
    (repo / "train.py").write_text(TORCH.replace(HEAD, HEAD + '''\
        flor.log("seen", net.seen)
'''))
    plan = make_plan(repo, ["seen"], workers=2)
    assert all(r.strategy.startswith("skip inner loops") for r in plan.runs)
    assert all(r.verify is not None for r in plan.runs)  # the runs' lr differ: both checked
    report = execute(repo, plan, progress=False)
    assert report.ok, report.render()
    assert not any(r.fell_back for r in report.runs), report.render()
    assert "values agree" in report.runs[0].cross_check
    assert_equal_to_scratch(repo, report, ["seen"], tmp_path, HISTORY)


def test_units_from_checkpoints_restore_module_attributes(tmp_path):
    """A statement inside the inner loop reads ``net.seen``: units start from checkpoints
    (nothing skipped), restore ``seen`` with the module, and their state equals the
    recording's at every boundary they reach."""
    repo = recorded(tmp_path)
    (repo / "train.py").write_text(TORCH.replace(INNER_LOG, INNER_LOG + '''\
            flor.log("seen_step", net.seen)
'''))
    plan = make_plan(repo, ["seen_step"], workers=4)
    assert all(r.strategy.startswith("run iterations from checkpoints") for r in plan.runs)
    report = execute(repo, plan, progress=False)
    assert report.ok, report.render()
    assert not any(r.fell_back for r in report.runs), report.render()
    assert all(r.recording_agreed for r in report.runs)
    assert_equal_to_scratch(repo, report, ["seen_step"], tmp_path, HISTORY)

def test_a_name_only_the_skipped_loop_binds_keeps_the_loop(tmp_path):
    """A recorded ``flor.log("last", loss.item())`` after the inner loop reads ``loss``, which
    only that loop binds: skipping it would raise NameError, so the loop is executed."""
    pytest.importorskip("torch")
    script = TORCH.replace("range(5)", "range(3)").replace(
        INNER_LOG, '        flor.log("last", loss.item())\n')
    repo = make_repo(tmp_path / "proj")
    record(repo, [(script, ())], env={"FLORDB_EPSILON": "1e9"})
    (repo / "train.py").write_text(script.replace(
        '        flor.log("last"',
        '        flor.log("w0", float(net.body[0].weight.sum()))\n        flor.log("last"'))
    plan = make_plan(repo, ["w0"], workers=2)
    assert "inner loops executed" in plan.runs[0].strategy and "loss" in plan.runs[0].strategy
    report = execute(repo, plan, progress=False)
    assert report.ok, report.render()
    assert_equal_to_scratch(repo, report, ["w0"], tmp_path, [(script, ())])


def test_cross_check_off_is_visible_in_the_plan(tmp_path):
    repo = recorded(tmp_path)
    (repo / "train.py").write_text(TORCH.replace(HEAD, HEAD + '''\
        flor.log("seen", net.seen)
'''))
    assert "cross-check: iteration" in make_plan(repo, ["seen"], workers=2).render()
    assert all(r.verify is None for r in make_plan(repo, ["seen"], verify="none").runs)
    assert all(r.verify is not None for r in make_plan(repo, ["seen"], verify="run").runs)


DATA = '''
import os
import flordb as flor
with open("../data/scale.txt") as f:
    scale = float(f.read())
mode = os.environ.get("TRAIN_MODE", "unset")
total = 0.0
for epoch in flor.loop("epoch", range(3)):
    total += scale * (epoch + 1)
    flor.log("total", total)
flor.log("mode", mode)
'''


def test_paths_outside_the_project_and_the_recorded_environment(tmp_path, monkeypatch):
    """The tutorial reads ``../data``; a replay must too, and see the variables the run saw."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "scale.txt").write_text("2.5")
    repo = make_repo(tmp_path / "proj")
    record(repo, [(DATA, ())], env={"TRAIN_MODE": "recorded", "API_TOKEN": "t0p"})
    (repo / "train.py").write_text(DATA.replace('''    flor.log("total", total)
''', '''    flor.log("total", total)
    flor.log("double", 2 * total)
''').replace('flor.log("mode", mode)', 'flor.log("mode", mode)\nflor.log("mode2", mode)'))
    monkeypatch.setenv("TRAIN_MODE", "today")
    monkeypatch.setenv("API_TOKEN", "today-token")
    plan = make_plan(repo, ["double", "mode2"])
    assert "taken from today's environment: API_TOKEN" in plan.render()
    report = execute(repo, plan, progress=False)
    assert report.ok, report.render()
    from flordb.store.frames import dataframe

    frame = dataframe(repo, ["double", "mode2"])
    assert frame["double"].dropna().tolist() == [5.0, 15.0, 30.0]
    assert set(frame["mode2"].dropna()) == {"recorded"}  # top-level: on every row
    monkeypatch.setenv("TRAIN_MODE", "recorded")
    (tmp_path / "s" / "data").mkdir(parents=True)  # beside the from-scratch project
    (tmp_path / "s" / "data" / "scale.txt").write_text("2.5")
    assert_equal_to_scratch(repo, report, ["double"], tmp_path / "s", [(DATA, ())])
