"""The pure parts of the runtime: echo lines, names, the thread runtimes' sharing."""

from __future__ import annotations

import pytest

from flordb.errors import BadNameError
from flordb.runtime import ECHO_PER_SECOND, RUNTIME, Runtime, _check_name, _short


def test_short_values_for_the_terminal():
    assert _short(0.1234567891) == "0.123457"
    assert _short("a\nb") == "'a\\nb'"  # one line whatever the value
    long = _short("x" * 500)
    assert len(long) == 80 and long.endswith("…")


def test_names_must_be_storable():
    _check_name("loss", "flor.log")
    with pytest.raises(TypeError, match="must be a str"):
        _check_name(3, "flor.log")
    with pytest.raises(BadNameError, match="lone surrogate"):
        _check_name("bad\udcff", "flor.log")


def test_echo_is_rate_limited_and_counts_what_it_held_back(capsys):
    rt = Runtime(process=RUNTIME)
    for i in range(ECHO_PER_SECOND + 5):
        rt._echo_value("msg", i)
    lines = capsys.readouterr().err.splitlines()
    if len(lines) == ECHO_PER_SECOND:  # all in one second: the rest held back
        rt._echo_window = (rt._echo_window[0] - 1, *rt._echo_window[1:])  # a second later
        rt._echo_value("msg", "next")
        assert capsys.readouterr().err.strip() == "flordb: msg: next (5 values not shown)"
    else:  # the clock ticked over during the loop: nothing may be lost from the count
        assert len(lines) > ECHO_PER_SECOND


def test_a_thread_runtime_shares_the_kwargs_and_project():
    rt = Runtime(process=RUNTIME)
    assert rt.kwargs is RUNTIME.kwargs and rt.kwargs_read is RUNTIME.kwargs_read
    assert not rt.main and rt.mode is None
