"""Bad input gets one line, never a traceback; every logged name stays readable.

Names that collide with the frame's own columns, ``--kwargs`` that do not cast (a property
test over names and values), SQL that is empty or would change the store, source files in
another encoding or not text at all, and the credential heuristic's documented list."""

from __future__ import annotations

import sqlite3
import string
import subprocess
import sys

import pytest
from conftest import run_script
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flordb import kwargs
from flordb.errors import ArgCastError, QueryError
from flordb.store.db import DB_FILENAME, store_dir
from flordb.store.frames import dataframe, runs_where
from flordb.store.redact import is_secret
from flordb.store.sql import query


def cli(repo, *args):
    return subprocess.run([sys.executable, "-m", "flordb", *args], cwd=repo,
                          capture_output=True, text=True)


CLASHING = '''
import flordb as flor
flor.log("run_id", "wandb-7")
flor.log("tstamp", 3)
for epoch in flor.loop("epoch", range(2)):
    flor.log("epoch", 10 * epoch)
    flor.log("epoch_value", 0.5)
    flor.log("iter", epoch)
    flor.log("acc", 0.25 * epoch)
'''


def test_names_like_the_frames_own_columns_are_kept_and_readable(repo, tmp_path):
    run_script(repo, CLASHING)
    frame = dataframe(repo, ["run_id", "tstamp", "epoch", "epoch_value", "iter", "acc"])
    assert list(frame.columns) == ["projid", "tstamp", "filename", "epoch", "epoch_value",
                                   "run_id", "tstamp_logged", "epoch_logged",
                                   "epoch_value_logged", "iter", "acc"]
    assert frame["epoch"].tolist() == [1, 2]  # the loop's own column keeps its name
    assert frame["epoch_logged"].tolist() == [0, 10]
    assert frame["run_id"].tolist() == ["wandb-7"] * 2
    assert frame["tstamp_logged"].tolist() == [3, 3]
    assert frame["iter"].tolist() == [0, 1]
    per_run = dataframe(repo, [])
    assert per_run["run_id"].tolist() == ["wandb-7"]
    assert runs_where(repo, "run_id_logged == 'wandb-7'")["run_id"].tolist() == [1]
    assert runs_where(repo, None, [("tstamp", "last")])["tstamp last"].tolist() == [3]
    for args in (["dataframe", "run_id", "tstamp", "epoch", "acc"],
                 ["plot", "epoch", "-o", str(tmp_path / "e.png")],
                 ["replay", "acc", "--where", "run_id_logged == 'wandb-7'", "--dry-run"]):
        done = cli(repo, *args)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=12), text=st.text(max_size=20),
       default=st.sampled_from([1, 0.5, True, "s", None, [1], (1, 2), {"a": 1}]))
def test_any_kwargs_string_casts_or_names_the_problem_in_one_line(name, text, default):
    try:
        found = kwargs.extract(["train.py", "--kwargs", f"{name}={text}"])
    except ArgCastError as exc:
        assert "\n" not in str(exc) and "not a valid name" in str(exc)
        return
    for key, value in found.items():
        try:
            kwargs.cast(key, value, default)
        except ArgCastError as exc:
            assert "\n" not in str(exc) and f"--kwargs {key}=" in str(exc)


ARGS = "import flordb as flor\nx = flor.arg('x', 1)\nz = flor.arg('z', True)\nprint(x, z)\n"


@pytest.mark.parametrize("pair", ["x=abc", "x=1.5", "z=maybe", "=1", "x=\x01", "x=\U0001f600",
                                  "\U0001f600=1", "x=" + "[" * 200])
def test_bad_kwargs_exit_2_with_one_line(repo, pair):
    done = run_script(repo, ARGS, "--kwargs", pair, check=False)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("train.py: error: --kwargs")
    assert "Traceback" not in done.stderr


def test_a_good_kwarg_still_works(repo):
    assert run_script(repo, ARGS, "--kwargs", "x=7", "z=no").stdout.split() == ["7", "False"]


@pytest.mark.parametrize("sql,message", [
    ("", "no SQL statement"), ("  \n ", "no SQL statement"),
    ("PRAGMA journal_mode = DELETE", "not authorized"),
    ("PRAGMA user_version = 99", "not authorized"),
    ("ATTACH 'other.db' AS o", "not authorized"),
    ("SELECT 1; SELECT 2", "one statement"), ("SELEC 1", "syntax error"),
])
def test_sql_that_cannot_run_is_one_line_and_changes_nothing(repo, sql, message):
    run_script(repo, CLASHING)
    db = store_dir(repo) / DB_FILENAME
    mode = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    with pytest.raises(QueryError, match=message):
        query(repo, sql)
    done = cli(repo, "query", sql)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == mode
    assert (repo / "other.db").exists() is False


def test_read_only_pragmas_answer(repo):
    run_script(repo, CLASHING)
    assert "tstamp" in query(repo, "PRAGMA table_info(runs)")["name"].tolist()
    assert query(repo, "PRAGMA user_version").iloc[0, 0] >= 8


LATIN1 = b'# -*- coding: latin-1 -*-\nimport flordb as flor\nname = "caf\xe9"\n' \
         b'for e in flor.loop("e", range(2)):\n    flor.log("acc", 1.0)\n'


def test_propagate_reads_a_declared_encoding_and_refuses_binary_in_one_line(repo):
    (repo / "old.py").write_bytes(LATIN1)
    (repo / "new.py").write_bytes(LATIN1 + b'    flor.log("n", len(name))\n')
    done = subprocess.run([sys.executable, "-m", "flordb", "propagate", "new.py", "old.py",
                           "--name", "n"], cwd=repo, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == LATIN1 + b'    flor.log("n", len(name))\n'  # still latin-1
    (repo / "bin.py").write_bytes(bytes(range(256)) * 4)
    done = cli(repo, "propagate", "new.py", "bin.py", "--name", "n")
    assert done.returncode == 2 and "bin.py is not Python source text" in done.stderr
    assert done.stderr.count("\n") == 1


def test_echo_prints_strings_as_text(repo):
    done = run_script(repo, "import flordb as flor\nflor.log('msg', 'Hello world!')\n",
                      env={"FLORDB_ECHO": "1"})
    assert "msg: Hello world!" in done.stderr and "'Hello world!'" not in done.stderr


@pytest.mark.parametrize("name", [
    "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "hfToken", "WANDB_API_KEY", "DB_PASSWORD",
    "OPENAI_APIKEY", "session_cookie", "SSH_PRIVATE_KEY", "DATABASE_DSN", "MY_CREDENTIALS",
])
def test_credential_names_are_recognised(name):
    assert is_secret(name)


@pytest.mark.parametrize("name", [
    "SSL_CERT_FILE", "SSL_CERT_DIR", "PIP_CERT", "NIX_SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
    "GOOGLE_APPLICATION_CREDENTIALS_FILE", "KEY_PATH", "HOME", "PATH", "LR", "MONKEY",
    "TOKENIZERS_PARALLELISM", "CUDA_VISIBLE_DEVICES", "PYTHONPATH",
])
def test_paths_and_ordinary_names_are_not_credentials(name):
    assert not is_secret(name)


def test_names_of_any_characters_are_readable(repo):
    names = ["run_id", "loop_id", "rep", "seq", "a b", "ünï", "x" * 300,
             "".join(string.punctuation)]
    code = "import flordb as flor\n" + "".join(
        f"flor.log({n!r}, {i})\n" for i, n in enumerate(names))
    run_script(repo, code)
    frame = dataframe(repo, names)
    assert [frame[n].iloc[0] for n in names] == list(range(len(names)))


# One project for every example: each is a run of its own, read back as the newest row.
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.text(min_size=1, max_size=16), min_size=1, max_size=4, unique=True))
def test_any_logged_name_is_readable_or_refused_in_one_line(runtime, names):
    import flordb as flor
    from flordb.errors import BadNameError

    stored = []
    for i, name in enumerate(names):
        try:
            flor.log(name, i)
            stored.append((name, i))
        except BadNameError as exc:
            assert "\n" not in str(exc)
    flor.commit()
    if not stored:
        return
    frame = flor.dataframe(*[n for n, _ in stored])
    row = frame.iloc[-1]  # this run's row: each value under its name, or <name>_logged
    columns = list(frame.columns[3:])
    assert [row[c] for c in columns] == [i for _, i in stored]
