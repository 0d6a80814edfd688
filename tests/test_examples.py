"""The examples do what README and their docstrings say."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import make_repo, run_script

import flordb as flor
from flordb.store.frames import dataframe

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
W_NORM = '        flor.log("w_norm", float(np.linalg.norm(w)))\n'


def test_quickstart_and_its_hindsight_logging_recipe(tmp_path):
    repo = make_repo(tmp_path / "proj")
    shutil.copy(EXAMPLES / "quickstart.py", repo / "quickstart.py")
    run_script(repo, None, name="quickstart.py")
    run_script(repo, None, "--kwargs", "lr=0.3", "epochs=3", name="quickstart.py")
    frame = dataframe(repo, ["lr", "epochs", "acc"])
    assert frame.groupby("tstamp")["acc"].count().tolist() == [5, 3]
    # The recipe: the new statement as the first line of the epoch loop, then replay.
    source = (repo / "quickstart.py").read_text()
    head = '    for epoch in flor.loop("epoch", range(epochs)):\n'
    assert head in source
    patched = source.replace(head, head + W_NORM)
    (repo / "quickstart.py").write_text(patched)
    proc = subprocess.run(["flordb", "replay", "w_norm", "--yes"], cwd=repo,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "skip inner loops" in proc.stdout
    # acc, logged after the skipped step loop, was recomputed from the restored w: it agrees.
    assert "DIVERGES" not in proc.stdout and proc.stdout.count(", 0 differ") == 2
    replayed = dataframe(repo, ["w_norm"])
    fresh = make_repo(tmp_path / "fresh")
    (fresh / "quickstart.py").write_text(patched)
    run_script(fresh, None, name="quickstart.py")
    run_script(fresh, None, "--kwargs", "lr=0.3", "epochs=3", name="quickstart.py")
    assert replayed["w_norm"].tolist() == dataframe(fresh, ["w_norm"])["w_norm"].tolist()
    assert replayed["w_norm"].notna().sum() == 8


def run_pipeline(repo: Path) -> str:
    """Copy examples/pipeline into ``repo`` and run its Makefile; returns make's output."""
    shutil.copytree(EXAMPLES / "pipeline", repo / "pipeline")
    proc = subprocess.run(["make", "-C", "pipeline", f"PYTHON={sys.executable}"], cwd=repo,
                          capture_output=True, text=True, env={**os.environ, "FLORDB_ECHO": "0"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def feedback_app(limit: int):
    spec = importlib.util.spec_from_file_location("feedback_app", EXAMPLES / "feedback_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.create_app(limit=limit)


def test_pipeline_makefile_then_feedback_app(repo, runtime):
    assert "stored 300 predictions" in run_pipeline(repo)
    best = flor.best("acc")
    assert best["acc"].item() > 0.8
    corpus = flor.dataset("corpus", record_type="doc").version()
    assert corpus.n_members == 300
    # The model registry entry traces back to the corpus version it was trained on.
    predictions = flor.feature("prediction", record_type="doc").values()
    assert len(predictions) == 300 and predictions["annotator"].str.startswith("model:").all()
    used = flor.derived(corpus)
    scripts = set(used.loc[used["kind"] == "run", "filename"])
    assert scripts == {"pipeline/train.py", "pipeline/infer.py"}

    client = feedback_app(limit=5).test_client()
    page = client.get("/")
    assert page.status_code == 200
    shown = page.data.decode().split('data-record="')[1:]
    assert len(shown) == 5
    rid = shown[0].split('"')[0]
    reply = client.post("/label", data={"record_id": rid, "annotator": "alice",
                                        "label": "politics"})
    assert reply.status_code == 303
    bad = client.post("/label", data={"record_id": rid, "annotator": "bob", "label": "x"})
    assert bad.status_code == 400 and b"not in the vocabulary" in bad.data
    labels = client.get("/labels.json").json
    assert [(r["record_id"], r["value"], r["annotator"]) for r in labels] == \
        [(rid, "news", "alice")]
    assert '<td class="reviewed">news</td>' in client.get("/").data.decode()
    run = labels[0]["run_id"]
    status = flor.query("SELECT status, filename FROM runs WHERE run_id = ?", (run,))
    assert status["status"].item() == "completed"  # committed by the save


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (.ci/run installs it)")
def test_feedback_page_in_headless_chromium(repo, runtime, tmp_path):
    """The page as a browser renders it, served by a real HTTP server."""
    from werkzeug.serving import make_server

    run_pipeline(repo)
    server = make_server("127.0.0.1", 0, feedback_app(limit=7), threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        proc = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
             f"http://127.0.0.1:{server.server_port}/"],
            capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    dom = proc.stdout
    assert "<h1>Predictions to review</h1>" in dom, proc.stderr[-2000:]
    assert dom.count("<form") == 7 and dom.count('data-record="doc') == 7
