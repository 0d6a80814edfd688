"""Values keep their types through the store."""

from __future__ import annotations

import math
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flordb as flor
from flordb import values
from flordb.errors import UntrustedStoreError
from flordb.values import PickledValue


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


def test_objects_are_pickled_with_their_repr_and_read_back_only_when_trusted(runtime):
    flor.log("arr", np.arange(3))
    flor.log("frac", Fraction(1, 3))
    flor.commit()
    df = flor.dataframe("arr", "frac")
    assert np.array_equal(df["arr"].iloc[0], np.arange(3))  # npy format: no pickle needed
    handle = df["frac"].iloc[0]
    assert isinstance(handle, PickledValue) and handle.repr == repr(Fraction(1, 3))
    with pytest.raises(UntrustedStoreError):
        handle.load()
    assert handle.load(trust_store=True) == Fraction(1, 3)
    reprs = flor.query("SELECT name, vtype, repr FROM records WHERE vtype IN"
                       " ('pickle', 'ndarray') ORDER BY name")
    assert reprs["vtype"].tolist() == ["ndarray", "pickle"]
    assert reprs["repr"].tolist() == [repr(np.arange(3)), repr(Fraction(1, 3))]


def test_object_arrays_are_pickles(runtime):
    flor.log("objs", np.array([{"a": 1}], dtype=object))
    assert isinstance(flor.dataframe("objs")["objs"].iloc[0], PickledValue)


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


class ReprFails:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class PickleFails:
    def __reduce__(self):
        raise TypeError("cannot pickle this")


def cyclic() -> list:
    x: list = [1]
    x.append(x)
    return x


awkward = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                                   blacklist_categories=()), max_size=30),  # surrogates, NUL
    st.binary(max_size=50),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.sampled_from([float("nan"), float("-inf"), "\x00", "x" * 200_000]),
    st.builds(cyclic), st.builds(ReprFails), st.builds(PickleFails),
    st.builds(threading.Lock),
)


@given(st.lists(awkward, min_size=1, max_size=5))
@settings(max_examples=40, deadline=None)
def test_awkward_values_never_lose_the_good_ones(tmp_path_factory, values_):
    """Whatever is logged beside them, plain floats all reach the store, in order."""
    from conftest import make_repo, run_script

    repo = make_repo(tmp_path_factory.mktemp("awkward") / "p")
    data = tmp_path_factory.mktemp("in") / "values.pkl"
    import pickle

    data.write_bytes(pickle.dumps([v for v in values_ if not isinstance(
        v, (ReprFails, PickleFails, type(threading.Lock())))]))
    kinds = [type(v).__name__ for v in values_]
    run_script(repo, f'''
import pickle, threading, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import flordb as flor
from test_values import ReprFails, PickleFails
plain = iter(pickle.loads(open({str(data)!r}, "rb").read()))
kinds = {kinds!r}
for i in flor.loop("i", range(len(kinds))):
    k = kinds[i]
    v = ReprFails() if k == "ReprFails" else PickleFails() if k == "PickleFails" else \\
        threading.Lock() if k == "lock" else next(plain)
    flor.log("awkward", v)
    flor.log("good", float(i))
''')
    frame = flor_frame(repo, ["good", "awkward"])
    assert frame["good"].tolist() == [float(i) for i in range(len(values_))]
    assert len(frame) == len(values_)


def flor_frame(repo, names):
    from flordb.store.frames import dataframe

    return dataframe(repo, names)


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                                      blacklist_categories=()), max_size=40))
@settings(max_examples=300, deadline=None)
def test_any_name_is_accepted_or_refused_at_log_time(name):
    """A name is refused right away (BadNameError) exactly when SQLite could not store it."""
    from flordb.errors import BadNameError
    from flordb.recorder import check_name as _check_name

    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(BadNameError):
            _check_name(name, "flor.log")
    else:
        _check_name(name, "flor.log")


def test_awkward_names_round_trip(repo):
    from conftest import run_script

    names = ["nul\x00inside", "x" * 10_000, "émoji 🚀", "'; DROP TABLE runs; --", " "]
    run_script(repo, f"""
import flordb as flor
for i in flor.loop("i", range(2)):
    for n in {names!r}:
        flor.log(n, float(i))
""")
    frame = flor_frame(repo, names)
    assert [frame[n].tolist() for n in names] == [[0.0, 1.0]] * len(names)
