"""Values keep their types through the store."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import flordb as flor
from flordb import values


def roundtrip(runtime, value):
    flor.log("v", value)
    flor.commit()
    return flor.dataframe("v")["v"].iloc[-1]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**62), 2**62) | st.text(max_size=20)
    | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=10)


@given(json_values)
@settings(max_examples=200, deadline=None)
def test_encode_decode_roundtrip(value):
    stored, vtype, text = values.encode(value)
    assert values.decode(stored, vtype, text) == value
    assert type(values.decode(stored, vtype, text)) is type(value)


def test_scalar_types_survive_the_store(runtime):
    cases = [1.5, 7, True, False, "text", None, [1, "a", None], {"k": [1.5]}, 2**70, b"\x00\x01",
             float("inf"), -0.0]
    for i, value in enumerate(cases):
        flor.log(f"v{i}", value)
    df = flor.dataframe(*[f"v{i}" for i in range(len(cases))])
    row = df.iloc[0]
    for i, value in enumerate(cases):
        got = row[f"v{i}"]
        if value is None:
            assert got is None or got != got
            continue
        assert got == value, (value, got)
        assert type(got) is type(value) or isinstance(got, (np.generic,)), (value, type(got))
    assert df["v0"].dtype == np.float64
    assert df["v1"].dtype == np.int64
    assert df["v2"].dtype == bool


def test_numpy_and_zero_d_values_are_numbers(runtime):
    flor.log("a", np.float32(0.25))
    flor.log("b", np.int64(3))
    flor.log("c", np.array(2.5))
    df = flor.dataframe("a", "b", "c")
    assert df["a"].iloc[0] == 0.25 and df["a"].dtype == np.float64
    assert df["b"].iloc[0] == 3 and df["b"].dtype == np.int64
    assert df["c"].iloc[0] == 2.5


def test_objects_are_pickled_with_their_repr(runtime):
    flor.log("arr", np.arange(3))
    flor.log("frac", Fraction(1, 3))
    flor.commit()
    df = flor.dataframe("arr", "frac")
    assert np.array_equal(df["arr"].iloc[0], np.arange(3))
    assert df["frac"].iloc[0] == Fraction(1, 3)
    reprs = flor.query("SELECT name, vtype, repr FROM records WHERE vtype = 'pickle'"
                       " ORDER BY name")
    assert reprs["repr"].tolist() == [repr(np.arange(3)), repr(Fraction(1, 3))]


def test_nan_float_is_a_value(runtime):
    for i in flor.loop("i", range(3)):
        flor.log("x", float("nan") if i == 1 else float(i))
    xs = flor.dataframe("x")["x"].tolist()
    assert xs[0] == 0.0 and math.isnan(xs[1]) and xs[2] == 2.0


def test_sql_looking_names_are_stored_verbatim(runtime):
    name = "x'); DROP TABLE runs; --"
    flor.log(name, 1.0)
    flor.log('"quoted" name', "Robert'); DROP TABLE records;--")
    df = flor.dataframe(name, '"quoted" name')
    assert df[name].iloc[0] == 1.0
    assert df['"quoted" name'].iloc[0] == "Robert'); DROP TABLE records;--"
    assert len(flor.query("SELECT * FROM runs")) == 1


def test_log_returns_value_unchanged(runtime):
    obj = object()
    assert flor.log("o", obj) is obj
    assert flor.log("f", 1.25) == 1.25
