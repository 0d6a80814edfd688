"""Where live state differs from recorded state: paths, sizes, tolerance, generators."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

from flordb import state
from flordb.checkpoint import Checkpoint, compare
from flordb.statediff import differences


def test_equal_state_has_no_difference():
    tree = {"w": np.arange(4.0), "steps": 3, "groups": [{"lr": 0.1}], "name": "a"}
    assert differences(tree, {"w": np.arange(4.0), "steps": 3, "groups": [{"lr": 0.1}],
                              "name": "a"}) == []


def test_each_difference_names_its_place_and_size():
    found = differences({"w": np.zeros(4), "groups": [{"lr": 0.1}], "k": {"a": 1}},
                        {"w": np.array([0, 0, 0.5, 0]), "groups": [{"lr": 0.01}], "k": {"b": 1}},
                        "opt")
    by_path = {d.path: d for d in found}
    assert by_path["opt.w"].max_abs_diff == 0.5 and "1 of 4 elements" in by_path["opt.w"].detail
    assert by_path["opt.groups[0].lr"].max_abs_diff == pytest.approx(0.09)
    assert "keys differ" in by_path["opt.k"].detail


def test_shapes_types_and_lengths():
    (shape,) = differences(np.zeros(3), np.zeros(4))
    assert shape.max_abs_diff is None and "(3,)" in shape.detail and "(4,)" in shape.detail
    assert "length 2 recorded, 3 live" in differences([1, 2], [1, 2, 3])[0].detail
    assert "recorded a int, live a str" in differences(1, "1")[0].detail


def test_exact_on_the_cpu_within_a_tolerance_otherwise():
    a, b = np.array([1.0]), np.array([1.0 + 1e-9])
    assert differences(a, b) and not differences(a, b, exact=False)
    assert differences(1.0, 1.0 + 1e-3, exact=False)
    assert not differences(float("nan"), float("nan"))


class Counter:
    def __init__(self, n: int) -> None:
        self.n = n


def test_objects_and_generators_compare_by_their_state():
    assert not differences(Counter(2), Counter(2))
    assert differences(Counter(2), Counter(3))[0].path == "n"
    (pickled,) = differences(pickle.dumps(Counter(2)), pickle.dumps(Counter(3)), "c")
    assert pickled.path == "c.n" and pickled.max_abs_diff == 1
    g1, g2 = np.random.default_rng(0), np.random.default_rng(0)
    assert not differences(g1, g2)
    g2.random()
    assert differences(g1, g2)


def test_torch_modules_compare_state_grads_and_extras():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1)
    net.steps = 5
    recorded = Checkpoint(1, 1, 1, {})
    captured = state.capture(net, "torch")
    for entry, kind, value in state.split_entries("net", "torch", captured):
        recorded.states[entry] = (kind, value)
    recorded.states[state.RNG_KEY] = ("rng", state.capture_rng())
    since = state.capture_rng()
    assert compare(recorded, {"net": net}, rng_since=since) == []
    net.steps = 6
    (found,) = compare(recorded, {"net": net}, rng_since=since)
    assert found.path == "net#extras.attrs.steps" and found.max_abs_diff == 1
    net.steps = 5
    random.random()  # drawn from since the unit began: compared, and differs
    assert compare(recorded, {"net": net}, rng_since=since)[0].path.startswith(
        "random generators.random")
    assert compare(recorded, {"net": net}, rng_since=state.capture_rng()) == []
