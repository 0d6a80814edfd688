"""The web view: pages, read-only access, escaping, errors, and a real headless browser."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
from conftest import git, run_script

from flordb.store.db import store_dir
from flordb.ui import create_app

EVIL = "<script>alert(1)</script>"
SCRIPT = '''
import numpy as np
import flordb as flor

lr = flor.arg("lr", 0.1)
w = np.zeros(2)
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(4)):
        for step in flor.loop("step", range(3)):
            w += lr
            flor.log("loss", float(1 / (1 + w.sum())))
        flor.log("acc", float(w.mean()))
flor.log("note", "{evil}")
flor.log("{evil}", 1.5)
'''.replace("{evil}", EVIL)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from conftest import make_repo

    repo = make_repo(tmp_path_factory.mktemp("ui") / "proj")
    run_script(repo, SCRIPT, "--kwargs", "lr=0.1")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "train")
    run_script(repo, None, "--kwargs", "lr=0.3")
    (repo / "train.py").write_text(SCRIPT.replace("range(3)", "range(2)"))
    run_script(repo, None, "--kwargs", "lr=0.5")
    (repo / "train.py").write_text(SCRIPT.replace(
        '        flor.log("acc"',
        '        flor.log("wmax", float(w.max()))\n        flor.log("acc"'))
    from flordb.hindsight.plan import make_plan
    from flordb.hindsight.replay import execute

    assert execute(repo, make_plan(repo, ["wmax"]), progress=False).ok
    return repo


@pytest.fixture
def client(project):
    return create_app(project).test_client()


def test_every_page_renders_and_escapes_user_strings(client):
    for url in ("/", "/runs/1", "/runs/2/diff", "/metrics", "/metrics?name=loss&x=epoch",
                "/dataframe?names=acc,note", "/replays", "/datasets", "/features",
                f"/dataframe?names={EVIL}"):
        page = client.get(url)
        assert page.status_code == 200, (url, page.data[:300])
        text = page.data.decode()
        assert EVIL not in text, url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/dataframe?names=note").text
    assert "&lt;script&gt;" in client.get("/runs/1").text  # the evil name in the names list
    metrics = client.get("/metrics").text
    choices = json.loads(metrics.split('id="choices">', 1)[1].split("</script>", 1)[0])
    assert choices["loops"]["loss"] == ["epoch", "step"]  # loss: per step, within epochs
    assert EVIL in choices["names"] and "lr" in choices["args"] and len(choices["runs"]) == 3
    runs = client.get("/").text
    assert runs.count('<tr data-run="') == 3 and "lr=0.3" in runs
    diff = client.get("/runs/3/diff").text
    assert 'class="del">-        for step in flor.loop(&#34;step&#34;, range(3))' in diff
    replays = client.get("/replays").text
    assert "wmax" in replays and "done" in replays and ">acc<" in replays
    png = client.get("/chart.png?name=loss&x=epoch&run=no-such-run")  # runs are named by id
    assert png.status_code == 400 and "ids" in png.text
    png = client.get("/chart.png?name=loss&x=epoch&run=999")  # no such run: nothing to draw
    assert png.status_code == 400
    png = client.get("/chart.png?name=acc")
    assert png.status_code == 200 and png.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_requests_get_4xx_and_never_a_traceback(client):
    for url, code in (("/runs/999", 404), ("/runs/1/diff", 404), ("/chart.png", 400),
                      ("/chart.png?name=loss&x=nope", 400),
                      ("/dataframe?names=acc&q=;drop", 400),
                      ("/dataframe?names=acc&q=nope == 1", 400),
                      ("/dataframe?names=acc&q=__import__('os')", 400), ("/nope", 404)):
        page = client.get(url)
        assert page.status_code == code, (url, page.status_code)
        assert "Traceback" not in page.text and page.mimetype == "text/plain"
    assert client.post("/").status_code == 405
    for body, code in (({"name": "nope"}, 400), ({"name": "loss", "x": "nope"}, 400),
                       ({"name": "loss", "group": "nope"}, 400), ({"name": "loss", "buckets": 1},
                                                                  400),
                       ({"name": "loss", "runs": "all"}, 400), ("not json", 400)):
        answer = client.post("/api/series", json=body)
        assert answer.status_code == code, body
        assert "Traceback" not in answer.text
    for body in ({}, {"x": "nope", "name": "acc", "summary": "max"},
                 {"x": "lr", "name": "acc", "summary": "median"},
                 {"x": "lr", "name": "acc", "summary": "max", "q": "import os"}):
        answer = client.post("/api/scatter", json=body)
        assert answer.status_code == 400 and "Traceback" not in answer.text, body
    assert client.get("/scatter").status_code == 200


def test_the_view_never_writes_the_store(client, project):
    db = store_dir(project) / "flor.db"
    before = db.read_bytes()
    for url in ("/", "/metrics?name=loss", "/chart.png?name=loss", "/dataframe?names=loss",
                "/replays", "/datasets", "/features"):
        client.get(url)
    assert db.read_bytes() == before


def test_dataframe_filter_is_the_runs_search_grammar(client):
    page = client.get("/dataframe", query_string={"names": "acc", "q": "epoch >= 4"}).text
    assert "3 rows" in page
    page = client.get("/dataframe", query_string={"names": "acc,note",
                                                  "q": "'alert' in note"}).text
    assert "12 rows" in page  # the top-level note is spread over the 3 x 4 epoch rows
    page = client.get("/dataframe", query_string={"names": "acc,note",
                                                  "q": "'nothing' in note and epoch > 0"}).text
    assert "0 rows" in page


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (.ci/run installs it)")
def test_in_headless_chromium(project, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, create_app(project), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    problems, dialogs = [], []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                        args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(base + "/")
            assert page.locator("#runs tr[data-run]").count() == 3
            page.click("text=Metrics")
            page.wait_for_selector("#chart canvas")
            page.select_option("#name", "acc")
            page.select_option("#x", "epoch")
            page.uncheck("#runs input >> nth=0")
            page.wait_for_function("document.querySelector('#status').textContent"
                                   ".startsWith('2 runs')")
            page.goto(base + "/dataframe?names=note")
            assert EVIL in page.inner_text("table")  # shown as text, never run
            page.goto(base + "/runs/1")
            assert EVIL in page.inner_text("main")
            browser.close()
    finally:
        server.shutdown()
    assert not problems, problems
    assert not dialogs, dialogs


def test_series_api_matches_the_frame(client, project):
    """Each run's points are flor.dataframe's; grouping gives pandas' mean and range per x."""
    import numpy as np

    from flordb.store.frames import arguments, dataframe

    answer = client.post("/api/series", json={"name": "acc", "x": "epoch"}).get_json()
    frame = dataframe(project, ["acc"])
    assert [r["tstamp"] for r in answer["runs"]] == list(frame["tstamp"].unique())
    for r in answer["runs"]:
        mine = frame[frame["tstamp"] == r["tstamp"]]
        assert r["x"] == mine["epoch"].astype(float).tolist()
        assert r["y"] == pytest.approx(mine["acc"].tolist())
    assert [r["replayed"] for r in answer["runs"]] == [False] * 3
    ids = dataframe(project, ["acc"], run_ids=True).groupby("tstamp")["run_id"].first()
    assert [r["run_id"] for r in answer["runs"]] == [int(ids[r["tstamp"]]) for r in
                                                     answer["runs"]]
    second = answer["runs"][1]
    only = client.post("/api/series", json={"name": "acc", "x": "epoch",
                                            "runs": [second["run_id"]]}).get_json()["runs"]
    assert [(r["run_id"], r["y"]) for r in only] == [(second["run_id"], second["y"])]
    assert client.post("/api/series", json={"name": "acc", "runs": [second["tstamp"]]}
                       ).status_code == 400  # runs are named by id
    assert json.loads(client.post("/api/series", json={"name": "wmax"}).text)["runs"][0][
        "replayed"] is True
    grouped = client.post("/api/series", json={"name": "loss", "x": "epoch",
                                               "group": "lr"}).get_json()["groups"]
    lr = arguments(project).set_index("tstamp")["lr"]
    loss = dataframe(project, ["loss"])
    per_run = loss.groupby(["tstamp", "epoch"])["loss"].mean().reset_index()
    per_run["group"] = "lr=" + per_run["tstamp"].map(lr).astype(str)
    want = per_run.groupby(["group", "epoch"])["loss"].agg(["mean", "min", "max", "size"])
    for group, band in grouped.items():
        rows = want.loc[group]
        assert band["x"] == rows.index.astype(float).tolist()
        assert np.allclose(band["mean"], rows["mean"]) and np.allclose(band["lo"], rows["min"])
        assert band["n"] == rows["size"].tolist()


def test_thinning_keeps_spikes():
    import numpy as np

    from flordb.charts import thin

    xs = np.arange(1, 1_000_001, dtype=float)
    ys = np.sin(xs / 1000)
    ys[123_456] = 50.0  # one spike among a million points
    ys[654_321] = -50.0
    tx, ty = thin(xs, ys, 500)
    assert len(tx) <= 1000 and 50.0 in ty and -50.0 in ty
    assert np.all(np.diff(tx) > 0)  # still in x order


def test_runs_table_search_metric_columns_and_csv(client, project):
    import csv
    import io

    from flordb.store.frames import dataframe

    page = client.get("/?metrics=acc max, loss last&q=lr >= 0.3").text
    assert page.count('<tr data-run="') == 2 and "lr=0.1" not in page
    acc = dataframe(project, ["acc"]).groupby("tstamp")["acc"].max()
    for tstamp, best in acc.items():
        if f'data-tstamp="{tstamp}"' in page:
            assert f'<td class="num">{best:.6g}</td>' in page
    bad = client.get("/?q=__import__('os')")
    assert bad.status_code == 200 and "is not a comparison" in bad.text
    rows = list(csv.DictReader(io.StringIO(
        client.get("/runs.csv?metrics=acc max&q=`acc max` > 0").text)))
    assert len(rows) == 3 and all(float(r["acc max"]) > 0 for r in rows)
    assert client.get("/runs.csv?q=nope > 1").status_code == 400


def test_compare_shows_differences_and_links_the_code_diff(client):
    page = client.get("/compare?run=1&run=3").text
    assert page.count('class="differs"') >= 1  # lr differs
    assert "--kwargs lr=0.5" in page  # the command that reproduces run 3
    assert "/runs/3/diff?against=1" in page
    diff = client.get("/runs/3/diff?against=1")
    assert diff.status_code == 200 and "range(2)" in diff.text
    assert client.get("/compare?run=1").status_code == 400
    assert client.get("/compare?run=1&run=999").status_code == 404


def test_what_broke_at_scale_is_mended(client):
    """The CSV has the table's status; a metric column asked twice is one column; the
    compare page's command is shell-quoted behind the interpreter that ran the run."""
    import csv
    import html
    import io
    import shlex
    import sys

    rows = list(csv.DictReader(io.StringIO(client.get("/runs.csv").text)))
    assert [r["status"] for r in rows] == ["completed"] * 3
    page = client.get("/?metrics=acc, acc last").text
    assert page.count(">acc last</th>") == 1 and "dtype:" not in page
    assert client.get("/?metrics=" + ",".join(f"m{i}" for i in range(21))).status_code == 400
    page = client.get("/compare?run=1&run=3").text
    command = html.unescape(page.split("<code>", 1)[1].split("</code>", 1)[0]) \
        if "<code>" in page else ""
    assert command.startswith(shlex.quote(sys.executable) + " "), command


def test_odd_requests_are_4xx_never_500(client):
    huge = str(2**70)
    for method, url, body, code in (
            ("get", f"/compare?run=1&run={huge}", None, 404),
            ("get", f"/runs/3/diff?against={huge}", None, 404),
            ("get", f"/runs/{huge}", None, 404),
            ("post", "/api/series", {"name": "acc", "x": ["epoch"]}, 400),
            ("post", "/api/series", {"name": "acc", "group": ["lr"]}, 400),
            ("post", "/api/scatter", {"x": "lr", "name": "acc", "summary": "max", "q": 3}, 400),
            ("get", "/?q=" + "(" * 400 + "lr > 0" + ")" * 400, None, 200),
            ("get", "/runs.csv?q=" + "not " * 5000 + "lr > 0", None, 400)):
        answer = client.get(url) if method == "get" else client.post(url, json=body)
        assert answer.status_code == code, (url, body, answer.status_code, answer.text[:200])
    page = client.get("/?q=" + "(" * 400 + "lr > 0" + ")" * 400).text
    assert "nested too deeply" in page or "not an expression" in page
