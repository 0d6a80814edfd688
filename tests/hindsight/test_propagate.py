"""Propagation of ``flor.log`` statements: before/after fixtures, properties, CLI."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from flordb.errors import ParseError
from flordb.hindsight.propagate import find_statements, propagate

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "propagate").iterdir())


def selection(case: Path) -> tuple[list[str], list[int]]:
    args = shlex.split((case / "args").read_text())
    names = [args[i + 1] for i, a in enumerate(args) if a == "--name"]
    lines = [int(args[i + 1]) for i, a in enumerate(args) if a == "--line"]
    return names, lines


@pytest.mark.parametrize("case", FIXTURES, ids=[c.name for c in FIXTURES])
def test_fixture(case):
    names, lines = selection(case)
    result = propagate((case / "new.py").read_text(), (case / "old.py").read_text(),
                       names=names, lines=lines)
    assert result.source == (case / "expected.py").read_text()
    assert [p.status for p in result.placements] == (case / "status").read_text().split()


def test_corpus_is_large_enough():
    assert len(FIXTURES) >= 30


@pytest.mark.parametrize("case", FIXTURES, ids=[c.name for c in FIXTURES])
def test_propagation_is_idempotent(case):
    names, lines = selection(case)
    new = (case / "new.py").read_text()
    once = propagate(new, (case / "old.py").read_text(), names=names, lines=lines)
    twice = propagate(new, once.source, names=names, lines=lines)
    assert twice.source == once.source
    assert all(p.status in ("present", "failed") for p in twice.placements)


# Cases whose statements can be deleted line by line (not one wrapping an assignment).
STANDALONE = [c for c in FIXTURES if not c.name.endswith("nested_in_assignment")]


@pytest.mark.parametrize("case", STANDALONE, ids=[c.name for c in STANDALONE])
def test_into_the_same_file_without_the_statements_restores_it(case):
    """Remove the selected statements from the new file, propagate them back: same file."""
    names, lines = selection(case)
    new = (case / "new.py").read_text()
    chosen = find_statements(new, names, lines)
    kept = [line for i, line in enumerate(new.splitlines(keepends=True), 1)
            if i not in {n for _, n, _ in chosen}]
    stripped = "".join(kept)
    result = propagate(new, stripped, names=names, lines=lines)
    assert result.source == new
    assert all(p.status == "placed" for p in result.placements)


def test_parse_errors_are_reported():
    with pytest.raises(ParseError, match="the old version does not parse"):
        propagate("import flordb as flor\nflor.log('a', 1)\n", "def broken(:\n",
                  names=["a"])


def test_unknown_name_is_a_failure():
    result = propagate("import flordb as flor\nx = 1\nflor.log('x', x)\n", "x = 1\n",
                       names=["x", "nope"])
    assert [p.status for p in result.placements] == ["placed", "failed"]
    assert "no flor.log of this name" in result.placements[1].reason


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "flordb", "propagate", *args], cwd=cwd,
                          capture_output=True, text=True)


def test_cli_contract(tmp_path):
    case = next(c for c in FIXTURES if c.name.endswith("several_statements"))
    ok = cli(str(case / "new.py"), str(case / "old.py"), "--name", "loss", "--name", "acc",
             cwd=tmp_path)
    assert ok.returncode == 0
    assert ok.stdout == propagate((case / "new.py").read_text(), (case / "old.py").read_text(),
                                  names=["loss", "acc"]).source
    assert ok.stderr.count("\n") == 2 and ok.stderr.startswith("placed:")
    diff = cli(str(case / "new.py"), str(case / "old.py"), "--name", "acc", "--diff",
               cwd=tmp_path)
    assert diff.returncode == 0 and '+    flor.log("acc", acc)' in diff.stdout
    failing = next(c for c in FIXTURES if c.name.endswith("new_variable_fails"))
    bad = cli(str(failing / "new.py"), str(failing / "old.py"), "--name", "gn", cwd=tmp_path)
    assert bad.returncode == 3 and "failed:" in bad.stderr
    assert bad.stdout == (failing / "old.py").read_text()
    (tmp_path / "broken.py").write_text("def (:\n")
    err = cli(str(case / "new.py"), str(tmp_path / "broken.py"), "--name", "acc", cwd=tmp_path)
    assert err.returncode == 2 and err.stderr.startswith("flordb: error: the old version")
