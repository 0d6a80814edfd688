"""Loop context: nesting, siblings, break/continue, exceptions, generators, mixed depth."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import flordb as flor


def contexts(*names: str):
    df = flor.dataframe(*names)
    dims = [c for c in df.columns[3:] if c not in names]
    return df, dims


def test_nested_loops_give_one_row_per_context(runtime):
    for e in flor.loop("epoch", range(2)):
        for s in flor.loop("step", range(3)):
            flor.log("loss", float(e * 10 + s))
    df, dims = contexts("loss")
    assert dims == ["epoch", "epoch_value", "step", "step_value"]
    assert df["epoch"].tolist() == [1, 1, 1, 2, 2, 2]
    assert df["step"].tolist() == [1, 2, 3] * 2
    assert df["step_value"].tolist() == [0, 1, 2] * 2
    assert df["loss"].tolist() == [0.0, 1.0, 2.0, 10.0, 11.0, 12.0]


def test_break_and_continue_keep_context(runtime):
    for e in flor.loop("epoch", range(3)):
        for s in flor.loop("step", range(10)):
            if s == 1:
                continue
            if s == 3:
                break
            flor.log("inner", s)
        flor.log("outer", e)  # after a broken inner loop: epoch context, not step
    flor.log("top", 1)
    df = flor.dataframe("inner", "outer")
    outer = df[df["outer"].notna()]
    assert outer["outer"].tolist() == [0, 1, 2]
    assert outer["step"].isna().all()
    inner = df[df["inner"].notna()]
    assert inner["inner"].tolist() == [0, 2] * 3
    assert inner["step"].tolist() == [1, 3] * 3
    top = flor.dataframe("top")
    assert len(top) == 1 and top["top"].iloc[0] == 1


def test_exception_inside_loop_restores_context(runtime):
    def train():
        for s in flor.loop("step", range(5)):
            if s == 2:
                raise ValueError("boom")
            flor.log("x", s)

    for e in flor.loop("epoch", range(2)):
        with pytest.raises(ValueError):
            train()
        flor.log("after", e)
    df = flor.dataframe("after")
    assert df["after"].tolist() == [0, 1]
    assert df["step"].isna().all() if "step" in df else True
    assert df["epoch"].tolist() == [1, 2]


def test_sibling_loops_and_plain_loops_between(runtime):
    for e in flor.loop("epoch", range(2)):
        for s in flor.loop("train", range(2)):
            flor.log("tl", 1.0)
        for _ in range(3):  # not a flor loop: context stays epoch
            flor.log("plain", 2.0)
        for s in flor.loop("valid", range(1)):
            flor.log("vl", 3.0)
    df = flor.dataframe("tl", "vl")
    assert list(df.columns[3:]) == ["epoch", "epoch_value", "train", "train_value", "valid",
                                    "valid_value", "tl", "vl"]
    assert df["tl"].notna().sum() == 4 and df["vl"].notna().sum() == 2
    assert df.loc[df["vl"].notna(), "train"].isna().all()
    plain = flor.dataframe("plain")
    assert len(plain) == 6  # three logs per epoch context: three rows each
    assert plain["epoch"].tolist() == [1, 1, 1, 2, 2, 2]


def test_generators_and_one_shot_iterators(runtime):
    def gen():
        yield from ("a", "b", "c")

    it = iter([10, 20, 30])
    for x in flor.loop("g", gen()):
        flor.log("g_seen", x)
    for x in flor.loop("once", it):
        flor.log("once_seen", x)
    for x in flor.loop("unsized", itertools.islice(itertools.count(5), 2)):
        flor.log("u", x)
    df = flor.dataframe("g_seen")
    assert df["g_value"].tolist() == ["a", "b", "c"]
    assert flor.dataframe("once_seen")["once_value"].tolist() == [10, 20, 30]
    assert flor.dataframe("u")["unsized_value"].tolist() == [5, 6]


def test_partially_consumed_generator_is_closed_cleanly(runtime):
    for e in flor.loop("epoch", range(2)):
        g = flor.loop("step", range(100))
        next(g)
        flor.log("in_step", 1)
        g.close()
        flor.log("in_epoch", 2)
    df = flor.dataframe("in_epoch")
    assert df["in_epoch"].tolist() == [2, 2]
    assert "step" not in df.columns or df["step"].isna().all()


def test_loop_yields_original_elements(runtime):
    items = [object(), {"a": 1}, np.float32(1.5), None]
    assert list(flor.loop("items", items)) == items
    flor.log("n", 1)
    values = flor.dataframe("n")
    assert len(values) == 1


def test_mixed_depths_all_appear(runtime):
    for e in flor.loop("epoch", range(2)):
        for s in flor.loop("step", range(2)):
            flor.log("metric", float(s))
        flor.log("metric", 100.0 + e)
    flor.log("metric", 999.0)
    df = flor.dataframe("metric")
    assert df["metric"].tolist() == [0.0, 1.0, 100.0, 0.0, 1.0, 101.0, 999.0]
    assert df["step"].isna().tolist() == [False, False, True, False, False, True, True]


def test_numpy_elements_are_scalars(runtime):
    for x in flor.loop("lr", np.array([0.1, 0.01])):
        flor.log("y", 1)
    assert flor.dataframe("y")["lr_value"].tolist() == [0.1, 0.01]


def test_commit_inside_loop_is_an_error(runtime):
    for _ in flor.loop("epoch", range(1)):
        with pytest.raises(RuntimeError, match="inside flor.loop"):
            flor.commit()
