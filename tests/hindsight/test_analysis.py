"""Static analysis behind the replay planner: positions, carried state, skip decisions."""

from __future__ import annotations

import textwrap

import pytest

from flordb.hindsight import analysis as A

TRAIN = textwrap.dedent('''
    import flordb as flor
    import torch

    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    history = []
    flor.log("n_params", count(model))                          # 8
    with flor.checkpointing(model=model, optimizer=opt):
        for epoch in flor.loop("epoch", range(5)):
            flor.log("head", float(model.w.sum()))              # 11
            total = 0.0
            for x, y in flor.loop("step", loader):
                loss = loss_fn(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss)
                flor.log("step_loss", float(loss))              # 19
            history.append(total)
            flor.log("avg", total / 10)                         # 21
            flor.log("wnorm", float(model.w.norm()))            # 22
    flor.log("final", float(model.w.sum()))                     # 23
''')
DEPTHS = {"epoch": 1, "step": 2}


def analyze(source: str = TRAIN, lines=(8, 11, 19, 21, 22, 23)) -> A.Analysis:
    return A.analyze(source, lines, "epoch", DEPTHS)


def test_positions():
    assert [s.position for s in analyze().sites] == [
        A.BEFORE, A.HEAD, A.INNER, A.AFTER_INNER, A.AFTER_INNER, A.AFTER]


def test_carried_and_restored_state():
    a = analyze()
    assert a.restored == {"model", "opt"}
    # history is appended to across epochs; total and loss are assigned before use.
    assert a.carried == {"model", "opt", "history"}
    assert {"loss", "total", "opt"} <= a.inner_changed
    assert a.after_inner_changed == {"history"}


def test_skip_decisions():
    a = analyze()
    head, _, avg, wnorm = a.sites[1:5]
    assert a.skip_ok(head) and a.skip_ok(wnorm)
    assert not a.skip_ok(avg)  # total is computed by the inner loop and not restored
    assert a.fast_forward_ok(avg.reads)  # running the iterations in full is fine


def test_unenrolled_optimizer_forbids_fast_forward():
    a = analyze(TRAIN.replace("model=model, optimizer=opt", "model=model"))
    assert "opt" in a.carried - a.restored
    assert not a.fast_forward_ok(a.sites[2].reads)


def test_restored_object_changed_after_the_inner_loop_is_not_skipped():
    source = TRAIN.replace("        history.append(total)\n",
                           "        history.append(total)\n        sched.step()\n") \
        .replace("optimizer=opt", "optimizer=opt, sched=sched") \
        .replace('float(model.w.norm())', 'sched.get_last_lr()[0]')
    a = A.analyze(source, [23], "epoch", DEPTHS)
    assert a.sites[0].position == A.AFTER_INNER
    assert not a.skip_ok(a.sites[0])  # the next epoch's checkpoint has sched stepped already


def test_inner_loop_moved_into_a_function():
    source = textwrap.dedent('''
        import flordb as flor

        def train_epoch(w, rng):
            for step in flor.loop("step", range(8)):
                g = grad(w, rng.integers(0, 9))
                w -= g
                flor.log("g", float(g.sum()))

        with flor.checkpointing(w=w, rng=rng):
            for epoch in flor.loop("epoch", range(3)):
                train_epoch(w, rng)
                flor.log("w", float(w.sum()))
    ''')
    a = A.analyze(source, [8, 13], "epoch", DEPTHS)
    assert [s.position for s in a.sites] == [A.INNER, A.AFTER_INNER]
    assert a.inner_changed >= {"w", "rng"}
    assert a.skip_ok(a.sites[1])


@pytest.mark.parametrize("call,changed", [
    ("torch.nn.init.zeros_(buf)", True),
    ("np.random.shuffle(buf)", True),
    ("np.sum(buf)", False),
    ("print(buf)", False),
    ("buf.append(1)", True),
])
def test_what_counts_as_changing_a_name(call, changed):
    source = textwrap.dedent(f'''
        import flordb as flor
        import numpy as np
        import torch
        buf = make()
        for epoch in flor.loop("epoch", range(3)):
            {call}
            flor.log("x", 1)
    ''')
    a = A.analyze(source, [8], "epoch", {"epoch": 1})
    assert ("buf" in a.carried) is changed


def test_an_unenrolled_scheduler_writing_the_enrolled_optimizer_forbids_fast_forward():
    """``sched`` is built from ``opt`` and stepped every epoch: it writes ``opt``'s learning
    rate, so iterations executed from a checkpoint (with a fresh ``sched``) would decay at the
    wrong epochs. Writes are followed both ways."""
    source = TRAIN.replace("history = []\n", "history = []\n"
                           "sched = torch.optim.lr_scheduler.StepLR(opt, 2)\n"
                           ).replace("        history.append(total)\n",
                                     "        history.append(total)\n"
                                     "        sched.step()\n")
    a = A.analyze(source, (12, 20), "epoch", DEPTHS)
    assert a.writers({"opt"}) == {"sched"}
    assert not a.fast_forward_ok(a.sites[1].reads)
    enrolled = A.analyze(source.replace("optimizer=opt", "optimizer=opt, sched=sched"),
                         (12, 20), "epoch", DEPTHS)
    assert enrolled.fast_forward_ok(enrolled.sites[1].reads)


def test_args_that_decide_control_flow():
    """``clip`` decides a branch and ``epochs`` a loop's length; ``lr`` only scales a step.
    An arg that is not bound to a name cannot be followed: every arg counts then."""
    source = textwrap.dedent('''
        import flordb as flor
        lr = flor.arg("lr", 0.1)
        clip = flor.arg("clip", 0.0)
        epochs = flor.arg("epochs", 3)
        limit = clip * 2
        for epoch in flor.loop("epoch", range(epochs)):
            w = w - lr
            if limit:
                w = w.clip(limit)
            flor.log("w", w)
    ''')
    assert A.analyze(source, (), "epoch", {"epoch": 1}).control_args == {"clip", "epochs"}
    loose = source.replace("flor.log(\"w\", w)", "flor.log(\"w\", w * flor.arg(\"s\", 1))")
    assert "*" in A.analyze(loose, (), "epoch", {"epoch": 1}).control_args


def test_values_that_read_the_clock_are_known():
    source = textwrap.dedent('''
        import time
        import flordb as flor
        for epoch in flor.loop("epoch", range(3)):
            t0 = time.perf_counter()
            loss = train()
            elapsed = time.perf_counter() - t0
            flor.log("seconds", elapsed)
            flor.log("stamp", time.time())
            flor.log("loss", loss)
    ''')
    assert A.analyze(source, (), "epoch", {"epoch": 1}).clocked == {"seconds", "stamp"}


def test_a_comprehension_variable_is_its_own_not_the_statements():
    """Scopes decide: ``i`` inside the comprehension is the comprehension's; the ``i`` read
    after it, and the loop variable assigned around it, are the script's."""
    source = textwrap.dedent('''
        import flordb as flor

        i = 0
        for epoch in flor.loop("epoch", range(3)):
            flor.log("x", sum([w * i for i in range(3)]) + i)
            flor.log("y", (lambda k: k + b)(2))
            for i in flor.loop("step", range(2)):
                ys = [j for j in range(i)]
    ''')
    a = A.analyze(source, [6, 7], "epoch", DEPTHS)
    assert a.sites[0].reads == {"w", "i"}  # the comprehension's own i is not the state read
    assert a.sites[1].reads == {"b"}  # a lambda's parameter is its own
    assert "i" in a.inner_changed  # the inner loop assigns i, though a comprehension binds j
