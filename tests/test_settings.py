"""Every FLORDB_* variable is declared once, parsed with its kind, and a bad value is named."""

from __future__ import annotations

import re
from pathlib import Path

from flordb import settings

PACKAGE = Path(__file__).resolve().parents[1] / "flordb"


def test_defaults():
    s = settings.read({})
    assert (s.flush_s, s.echo, s.capture, s.replay_unit, s.store_dir) == (1.0, True, True,
                                                                          None, None)
    assert s.home_dir == Path.home() / ".flor"


def test_values_are_parsed_by_kind():
    s = settings.read({"FLORDB_EPSILON": "0.2", "FLORDB_ECHO": "off", "FLORDB_CAPTURE": "Yes",
                       "FLORDB_HOME": "/tmp/h", "FLORDB_REPLAY": "12", "FLORDB_PROJID": "p"})
    assert (s.epsilon, s.echo, s.capture, s.home_dir, s.replay_unit, s.projid) == (
        0.2, False, True, Path("/tmp/h"), 12, "p")


def test_a_bad_value_is_named_and_the_default_used(capsys):
    s = settings.read({"FLORDB_FLUSH_S": "soon", "FLORDB_ECHO": "maybe",
                       "FLORDB_PARENT_RUN": "-3"})
    assert (s.flush_s, s.echo, s.parent_run) == (1.0, True, None)
    err = capsys.readouterr().err
    assert "FLORDB_FLUSH_S='soon'" in err and "not a positive number; using 1" in err
    assert "FLORDB_ECHO='maybe'" in err and "FLORDB_PARENT_RUN='-3'" in err


def test_every_variable_the_code_names_is_declared():
    named = set()
    for path in PACKAGE.rglob("*.py"):
        named |= set(re.findall(r'"(FLORDB_[A-Z_]+)"', path.read_text()))
    assert named <= {v.name for v in settings.VARIABLES}
    assert len(named) >= 10
