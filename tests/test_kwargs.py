"""``--kwargs`` and ``flor.arg``."""

from __future__ import annotations

import pytest

import flordb as flor
from flordb import kwargs
from tests.conftest import run_script


def test_extract_removes_only_the_pairs():
    argv = ["train.py", "--data", "d.csv", "--kwargs", "lr=0.1", "name=x=y", "-v", "pos"]
    assert kwargs.extract(argv) == {"lr": "0.1", "name": "x=y"}
    assert argv == ["train.py", "--data", "d.csv", "-v", "pos"]


def test_extract_bad_name():
    with pytest.raises(kwargs.ArgCastError, match="not a valid name"):
        kwargs.extract(["s", "--kwargs", "1x=2"])


@pytest.mark.parametrize("text,default,expected", [
    ("3", 1, 3), ("0.5", 1.0, 0.5), ("1e-3", 0.1, 0.001), ("yes", False, True),
    ("False", True, False), ("hello", "x", "hello"), ("7", None, "7"), ("7.5", None, "7.5"),
    ("none", None, "none"), ("abc", None, "abc"), ("[1, 2]", [0], [1, 2]),
])
def test_cast(text, default, expected):
    got = kwargs.cast("a", text, default)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("text,default", [("abc", 1), ("1.5", 2), ("maybe", True),
                                          ("x", 0.1), ("{", [1])])
def test_cast_errors_name_the_argument(text, default):
    with pytest.raises(kwargs.ArgCastError, match=r"--kwargs a=.*cannot cast"):
        kwargs.cast("a", text, default)


ARGPARSE_SCRIPT = """
import argparse
import flordb as flor
p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--verbose", action="store_true")
a = p.parse_args()
lr = flor.arg("lr", 0.01)
epochs = flor.arg("epochs", 2)
use_bn = flor.arg("use_bn", False)
tag = flor.arg("tag", "none")
print(a.data, a.verbose, repr(lr), repr(epochs), repr(use_bn), repr(tag))
"""


def test_argparse_coexists_and_args_are_recorded(repo):
    out = run_script(repo, ARGPARSE_SCRIPT, "--data", "d.csv", "--kwargs", "lr=0.5",
                     "use_bn=true", "--verbose").stdout
    assert out.split() == ["d.csv", "True", "0.5", "2", "True", "'none'"]
    run_script(repo, None, "--data", "e.csv")
    check = """
import flordb as flor
df = flor.dataframe("lr", "epochs", "use_bn")
assert df["lr"].tolist() == [0.5, 0.01], df
assert df["epochs"].tolist() == [2, 2]
assert df["use_bn"].tolist() == [True, False]
kinds = flor.query("SELECT DISTINCT kind FROM records WHERE name = 'lr'")["kind"].tolist()
assert kinds == ["arg"], kinds
import json
argv = [json.loads(a) for a in flor.query("SELECT argv FROM runs ORDER BY run_id")["argv"]]
# the command that reproduces each run, as typed: --kwargs included
assert argv == [["train.py", "--data", "d.csv", "--kwargs", "lr=0.5", "use_bn=true",
                 "--verbose"], ["train.py", "--data", "e.csv"]], argv
"""
    run_script(repo, check, name="check.py")


def test_bad_kwarg_fails_with_clear_error(repo):
    proc = run_script(repo, ARGPARSE_SCRIPT, "--data", "x", "--kwargs", "epochs=two",
                      check=False)
    assert proc.returncode != 0
    assert "--kwargs epochs='two': cannot cast to int" in proc.stderr


def test_unread_kwargs_are_reported(repo):
    proc = run_script(repo, "import flordb as flor\nflor.arg('lr', 0.1)\n", "--kwargs",
                      "lr=1", "typo=3")
    assert "never read by flor.arg: typo" in proc.stderr


def test_arg_is_stable_within_a_run(runtime):
    runtime.kwargs["k"] = "5"
    assert flor.arg("k", 1) == 5
    assert flor.arg("k", 1) == 5
    assert flor.arg("d", [1, 2]) == [1, 2]
    df = flor.dataframe("k", "d")
    assert df["k"].tolist() == [5] and df["d"].tolist() == [[1, 2]]
