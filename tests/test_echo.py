"""The terminal echo: short values, rate-limited lines."""

from __future__ import annotations

from flordb.echo import ECHO_PER_SECOND, Echo, short


def test_short_values_for_the_terminal():
    assert short(0.1234567891) == "0.123457"
    assert short("a\nb") == "'a\\nb'"  # one line whatever the value
    long = short("x" * 500)
    assert len(long) == 80 and long.endswith("…")


def test_echo_is_rate_limited_and_counts_what_it_held_back(capsys):
    echo = Echo(enabled=True)
    for i in range(ECHO_PER_SECOND + 5):
        echo.value("msg", i)
    lines = capsys.readouterr().err.splitlines()
    if len(lines) == ECHO_PER_SECOND:  # all in one second: the rest held back
        echo._window = (echo._window[0] - 1, *echo._window[1:])  # a second later
        echo.value("msg", "next")
        assert capsys.readouterr().err.strip() == "flordb: msg: next (5 values not shown)"
    else:  # the clock ticked over during the loop: nothing may be lost from the count
        assert len(lines) > ECHO_PER_SECOND


def test_echo_off_prints_nothing(capsys):
    echo = Echo(enabled=False)
    echo.value("msg", 1)
    echo.line("run ended")
    assert capsys.readouterr().err == ""
