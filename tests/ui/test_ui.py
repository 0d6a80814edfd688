"""The web view: pages, read-only access, escaping, errors, and a real headless browser."""

from __future__ import annotations

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
    metrics = client.get("/metrics?name=loss").text  # loss: per step, within epochs
    assert '<option value="epoch"' in metrics and '<option value="step"' in metrics
    runs = client.get("/").text
    assert runs.count('<tr data-run="') == 3 and "lr=0.3" in runs
    diff = client.get("/runs/3/diff").text
    assert 'class="del">-        for step in flor.loop(&#34;step&#34;, range(3))' in diff
    replays = client.get("/replays").text
    assert "wmax" in replays and "done" in replays and ">acc<" in replays
    png = client.get("/chart.png?name=loss&x=epoch&run=no-such-run")  # nothing to draw
    assert png.status_code == 400
    png = client.get("/chart.png?name=acc")
    assert png.status_code == 200 and png.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_requests_get_4xx_and_never_a_traceback(client):
    for url, code in (("/runs/999", 404), ("/runs/1/diff", 404), ("/metrics?name=nope", 400),
                      ("/chart.png", 400), ("/chart.png?name=loss&x=nope", 400),
                      ("/dataframe?names=acc&op=;drop", 400),
                      ("/dataframe?names=acc&col=nope&value=1", 400), ("/nope", 404)):
        page = client.get(url)
        assert page.status_code == code, (url, page.status_code)
        assert "Traceback" not in page.text and page.mimetype == "text/plain"
    assert client.post("/").status_code == 405


def test_the_view_never_writes_the_store(client, project):
    db = store_dir(project) / "flor.db"
    before = db.read_bytes()
    for url in ("/", "/metrics?name=loss", "/chart.png?name=loss", "/dataframe?names=loss",
                "/replays", "/datasets", "/features"):
        client.get(url)
    assert db.read_bytes() == before


def test_dataframe_filter_is_structured(client):
    page = client.get("/dataframe?names=acc&col=epoch&op=>=&value=4").text
    assert "3 rows" in page
    page = client.get("/dataframe?names=acc,note&col=note&op=contains&value=alert").text
    assert "12 rows" in page  # the top-level note is spread over the 3 x 4 epoch rows
    page = client.get("/dataframe?names=acc,note&col=note&op=contains&value=nothing").text
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
            with page.expect_navigation():
                page.select_option("select[name=name]", "acc")  # reloads with acc's loops
            page.select_option("select[name=x]", "epoch")
            page.uncheck("input[name=run] >> nth=0")
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            width = page.eval_on_selector("#chart", "img => img.naturalWidth")
            assert width > 0
            page.goto(base + "/dataframe?names=note")
            assert EVIL in page.inner_text("table")  # shown as text, never run
            page.goto(base + "/runs/1")
            assert EVIL in page.inner_text("main")
            browser.close()
    finally:
        server.shutdown()
    assert not problems, problems
    assert not dialogs, dialogs
