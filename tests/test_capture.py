"""A run's stdout, stderr and logging records, kept with the run and shown on its page."""

from __future__ import annotations

import sqlite3

from conftest import run_script

from flordb.store.db import store_dir
from flordb.ui import create_app

SCRIPT = '''
import logging, sys
import flordb as flor
log = logging.getLogger("train")
log.setLevel(logging.INFO)
for epoch in flor.loop("epoch", range(2)):
    print(f"epoch {epoch}", end="")
    print(" <done>")
    print("careful", file=sys.stderr)
    log.info("lr is %s", 0.1)
    flor.log("x", 1.0)
print("last line without newline", end="")
'''


def output(repo):
    conn = sqlite3.connect(store_dir(repo) / "flor.db")
    try:
        return conn.execute("SELECT stream, level, logger, text FROM run_output"
                            " ORDER BY run_id, seq").fetchall()
    finally:
        conn.close()


def test_output_is_kept_and_still_printed(repo):
    proc = run_script(repo, SCRIPT)
    assert proc.stdout == "epoch 0 <done>\nepoch 1 <done>\nlast line without newline"
    assert output(repo) == [
        ("stdout", None, None, "epoch 0 <done>"), ("stderr", None, None, "careful"),
        ("logging", "INFO", "train", "lr is 0.1"),
        ("stdout", None, None, "epoch 1 <done>"), ("stderr", None, None, "careful"),
        ("logging", "INFO", "train", "lr is 0.1"),
        ("stdout", None, None, "last line without newline")]
    page = create_app(repo).test_client().get("/runs/1").get_data(as_text=True)
    assert "epoch 1 &lt;done&gt;" in page and "INFO train: lr is 0.1" in page


def test_output_is_bounded_and_can_be_off(repo):
    run_script(repo, "import flordb as flor\nflor.log('a', 1.0)\nfor i in range(3000):\n"
                     "    print('x' * 99)\n", env={"FLORDB_CAPTURE_MB": "0.1"})
    rows = output(repo)
    assert 900 <= len(rows) <= 1100 and rows[-1][3].startswith("[")
    assert "more bytes of output were not kept" in rows[-1][3]
    run_script(repo, "import flordb as flor\nflor.log('a', 1.0)\nprint('hidden')\n",
               env={"FLORDB_CAPTURE": "0"})
    assert "hidden" not in {r[3] for r in output(repo)}
