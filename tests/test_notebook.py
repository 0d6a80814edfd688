"""A real notebook executed headlessly (nbclient + ipykernel): one run per cell that logs."""

from __future__ import annotations

import pytest

from flordb.store.frames import dataframe

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

CELLS = [
    "import flordb as flor\nimport numpy as np\nlr = flor.arg('lr', 0.1)",
    "w = 0.0\nfor epoch in flor.loop('epoch', range(3)):\n"
    "    w += lr\n    flor.log('loss', 1 / (1 + w))",
    "flor.dataframe('lr', 'loss')",
    "lr = flor.arg('lr', 0.5)\nfor epoch in flor.loop('epoch', range(2)):\n"
    "    flor.log('loss', lr * epoch)",
    "print('no logging here')",
    "flor.log('broken', 1)\nraise ValueError('cell fails')",
]


def test_each_logging_cell_is_a_durable_run(repo):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    path = repo / "explore.ipynb"
    nbformat.write(nb, path)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(repo)}},
                                     allow_errors=True)
    client.execute()
    shown = nb.cells[2].outputs[0]["data"]
    assert "text/html" in shown and "<table" in shown["text/html"]  # a normal DataFrame
    assert [o.get("ename") for o in nb.cells[5].outputs if o["output_type"] == "error"] == \
        ["ValueError"]
    frame = dataframe(repo, ["lr", "loss"]).dropna(subset=["loss"])
    runs = frame.groupby("tstamp", sort=True)
    assert [g["loss"].tolist() for _, g in runs] == [
        [1 / 1.1, 1 / 1.2, pytest.approx(1 / 1.3)], [0.0, 0.5]]
    assert [g["lr"].unique().tolist() for _, g in runs] == [[0.1], [0.5]]
    from flordb.store.db import connect_reader

    conn = connect_reader(repo)
    rows = conn.execute("SELECT filename, status FROM runs ORDER BY run_id").fetchall()
    conn.close()
    # cell 1 (args only), cell 2, cell 4 and the failing cell 6 logged; cell 3 read, 5 nothing
    assert [s for _, s in rows] == ["completed", "completed", "completed", "failed"]
    assert {f for f, _ in rows} <= {"explore.ipynb", "<notebook>"}
    # lr set in cell 1 is recorded in the run of cell 2 too, which trained with it
    assert dataframe(repo, [])["lr"].tolist() == [0.1, 0.1, 0.5, 0.5]
