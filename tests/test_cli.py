"""The ``flordb`` command line, as a subprocess."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pandas as pd

from tests.conftest import run_script

SCRIPT = """
import flordb as flor
flor.arg("lr", 0.1)
for e in flor.loop("epoch", range(3)):
    flor.log("loss", 1.0 / (e + 1))
"""


def cli(repo, *args):
    return subprocess.run([sys.executable, "-m", "flordb", *args], cwd=repo,
                          capture_output=True, text=True)


def test_dataframe_formats(repo):
    run_script(repo, SCRIPT)
    table = cli(repo, "dataframe", "lr", "loss")
    assert table.returncode == 0 and "epoch_value" in table.stdout
    csv = pd.read_csv(io.StringIO(cli(repo, "dataframe", "loss", "--csv").stdout))
    assert csv["loss"].round(4).tolist() == [1.0, 0.5, 0.3333]
    rows = [json.loads(line) for line in
            cli(repo, "dataframe", "loss", "--json").stdout.splitlines() if line]
    assert [r["epoch"] for r in rows] == [1, 2, 3]


def test_query_runs_stat(repo):
    run_script(repo, SCRIPT)
    q = cli(repo, "query", "SELECT name, COUNT(*) AS n FROM logs GROUP BY name ORDER BY name",
            "--csv")
    assert q.stdout.splitlines() == ["name,n", "loss,3", "lr,1"]
    runs = cli(repo, "runs")
    assert "completed" in runs.stdout and "train.py" in runs.stdout
    stat = cli(repo, "stat")
    assert "runs:    1" in stat.stdout and "values:  4" in stat.stdout


def test_bad_input_is_one_line_and_nonzero(repo, tmp_path):
    run_script(repo, SCRIPT)
    for args in (["dataframe", "nope"], ["query", "SELEC oops"],
                 ["query", "DELETE FROM runs"]):
        proc = cli(repo, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("flordb: error:") and proc.stderr.count("\n") == 1, \
            proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cli(empty, "runs")
    assert proc.returncode == 2 and "no flordb store" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_console_script_help():
    proc = subprocess.run(["flordb", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "examples:" in proc.stdout
