"""Scripts written for FlorDB run unchanged: each pattern as the paper's PDF-parser demo, its
successor, the tutorial and the README use it (written here in their shape)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import git, run_script

FEEDBACK_APP = '''
import flordb as flor

def save_colors(pdf_name, colors):
    """The demo's /save_colors route: one document per request, then commit."""
    with flor.iteration("document", None, pdf_name):
        for page in flor.loop("page", range(len(colors))):
            flor.log("page_color", colors[page])
    flor.commit()

save_colors("a.pdf", [1, 0, 1])
save_colors("b.pdf", [0, 0])
df = flor.dataframe("page_color")
latest = flor.utils.latest(df)
print(sorted(set(latest["document_value"])), len(df), len(latest))
print(type(df["tstamp"].iloc[0]).__name__, df["page"].tolist())
'''


def test_feedback_route_iteration_and_latest(repo):
    out = run_script(repo, FEEDBACK_APP).stdout.splitlines()
    assert out == ["['b.pdf'] 5 2", "Timestamp [1, 2, 3, 1, 2]"]


def test_constants_and_raw_string_arg(repo, tmp_path):
    home = tmp_path / "home"
    out = run_script(repo, '''
import flordb as flor, flor as same
cwd = str(__import__("pathlib").Path.cwd())
print(flor is same, flor.PROJID, flor.SCRIPTNAME, flor.CURRDIR == cwd)
print(flor.HOMEDIR)
print(repr(flor.arg("epochs")), repr(flor.arg("flag", False)), repr(flor.arg("lr", 0.1)))
''', "--kwargs", "epochs=5", "flag=y", "lr=1e-3", env={"FLORDB_HOME": str(home)}).stdout
    lines = out.splitlines()
    assert lines[0] == f"True {repo.name} train.py True"
    assert lines[1] == str(home) and home.is_dir()
    assert lines[2] == "'5' True 0.001"


def test_the_public_names(repo):
    import flordb

    assert flordb.__all__ == [
        "log", "arg", "loop", "iteration", "checkpointing", "set_epsilon", "commit",
        "dataframe", "pivot", "query", "replay", "input", "output", "executions", "dataset",
        "get_dataset", "datasets", "export_bag", "import_bag", "record_type", "ref",
        "feature", "lineage", "derived", "best", "load_checkpoint", "feature_store",
        "training_data", "plot", "utils", "FlorError", "StoreError", "InputError",
        "HindsightError", "LifecycleError"]
    assert all(hasattr(flordb, n) for n in flordb.__all__)
    assert issubclass(flordb.errors.UntrustedStoreError, flordb.FlorError)


def test_every_value_is_a_row(repo):
    run_script(repo, '''
import flordb as flor
for epoch in flor.loop("epoch", range(3)):
    for batch in range(4):   # a plain inner loop: per-batch values in one epoch context
        flor.log("loss", float(epoch * 10 + batch))
    flor.log("acc", epoch / 10)
''')
    from flordb.store.frames import dataframe

    frame = dataframe(repo, ["loss", "acc"])
    pivot = run_script(repo, "import flordb as flor\nprint(len(flor.pivot('loss', 'acc')))\n")
    assert pivot.stdout.strip() == str(len(frame))  # FlorDB's older name, the same frame
    assert frame["loss"].tolist() == [float(e * 10 + b) for e in range(3) for b in range(4)]
    assert frame["epoch"].tolist() == [e + 1 for e in range(3) for _ in range(4)]
    # The k-th values of names logged in one context share a row: acc with the first loss.
    assert frame["acc"].tolist()[::4] == [0.0, 0.1, 0.2]
    assert frame["acc"].isna().sum() == 9


def test_cli_forms_from_flordb_docs(repo):
    run_script(repo, '''
import flordb as flor
lr = flor.arg("lr", 0.1)
for epoch in flor.loop("epoch", range(2)):
    flor.log("loss", 1.0 / (epoch + 1))
    flor.log("acc", 0.5 + epoch / 10)
''')
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    run_script(repo, None, "--kwargs", "lr=0.2")
    proc = subprocess.run([sys.executable, "-m", "flordb", "dataframe", "loss,acc", "--csv"],
                          cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    header = proc.stdout.splitlines()[0].split(",")
    assert header[-2:] == ["loss", "acc"]
    (repo / "train.py").write_text((repo / "train.py").read_text().replace(
        '    flor.log("acc"', '    flor.log("half", lr / 2)\n    flor.log("acc"'))
    replay = subprocess.run([sys.executable, "-m", "flordb", "replay", "half,acc", "lr > 0.15"],
                            cwd=repo, capture_output=True, text=True, input="y\n")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    from flordb.store.frames import dataframe

    frame = dataframe(repo, ["lr", "half"])
    assert frame.dropna(subset=["half"])["half"].tolist() == [0.1, 0.1]  # only lr=0.2's run
    declined = subprocess.run([sys.executable, "-m", "flordb", "replay", "half"], cwd=repo,
                              capture_output=True, text=True, input="n\n")
    assert declined.returncode == 1


def test_threads_saving_and_committing(repo):
    """A web app's request threads, each saving labels then committing: each save is a run of
    its own, with its own values and feature records."""
    out = run_script(repo, '''
import threading
import flordb as flor
colour = flor.feature("colour", record_type="page", columns={"value": str})
errors = []
def save(k):
    try:
        for j in range(10):
            colour.add(f"p{k}-{j}", value=f"c{k}")
            flor.log("label", f"t{k}-{j}")
            flor.commit()
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=save, args=(k,)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(errors)
''').stdout
    assert out.strip() == "[]"
    from flordb.store.db import connect_reader
    from flordb.store.frames import dataframe

    frame = dataframe(repo, ["label"])
    assert sorted(frame["label"]) == sorted(f"t{k}-{j}" for k in range(4) for j in range(10))
    assert frame["tstamp"].nunique() == 40  # one run per save
    conn = connect_reader(repo)
    try:
        pairs = conn.execute(
            "SELECT f.record_id, r.value FROM feature_values AS f JOIN records AS r"
            " ON r.run_id = f.run_id AND r.name = 'label'").fetchall()
        statuses = {s for (s,) in conn.execute("SELECT status FROM runs")}
    finally:
        conn.close()
    assert len(pairs) == 40 and statuses == {"completed"}
    assert all(rec[1:] == label[1:] for rec, label in pairs)  # p1-3 saved with t1-3


ITERATION_APP = '''
import flordb as flor
docs = ["a.pdf", "bb.pdf", "ccc.pdf"]
for name in docs:
    with flor.iteration("document", None, name):
        for page in flor.loop("page", range(len(name))):
            flor.log("page_color", page % 2)
'''


def test_iteration_in_replay_equals_scratch(repo, tmp_path):
    from flordb.hindsight.plan import make_plan
    from flordb.hindsight.replay import execute
    from flordb.store.frames import dataframe

    run_script(repo, ITERATION_APP)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    run_script(repo, None)
    patched = ITERATION_APP.replace(
        '            flor.log("page_color", page % 2)\n',
        '            flor.log("page_color", page % 2)\n            flor.log("weight", page * 10)\n')
    (repo / "train.py").write_text(patched)
    report = execute(repo, make_plan(repo, ["weight"]), progress=False)
    assert report.ok, report.render()
    replayed = dataframe(repo, ["weight"]).dropna(subset=["weight"])
    scratch = tmp_path / "scratch"
    from conftest import make_repo

    fresh = make_repo(scratch)
    run_script(fresh, patched)
    expected = dataframe(fresh, ["weight"])
    cols = ["document", "document_value", "page", "weight"]
    assert replayed[replayed["tstamp"] == replayed["tstamp"].max()][cols].values.tolist() == \
        expected[cols].values.tolist()


REGISTRY_TRAIN = '''
import torch
import flordb as flor

torch.manual_seed(0)
model = torch.nn.Linear(3, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
X, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
with flor.checkpointing(model=model, optimizer=opt):
    for epoch in flor.loop("epochs", range(4)):
        for step in flor.loop("steps", range(4)):
            loss = torch.nn.functional.cross_entropy(model(X), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        flor.log("val_loss", float(torch.nn.functional.cross_entropy(model(X), y)))
'''

EXPORT_CKPT = '''
import os, shutil, torch
import flordb as flor
hist = flor.dataframe("val_loss")
hist = hist[hist["tstamp"] <= hist["tstamp"].min()].sort_values("val_loss")
best = hist.head(1).to_dict("records")[0]
path = os.path.join(flor.HOMEDIR, "obj_store", best["projid"],
                    best["tstamp"].isoformat(timespec="seconds"),
                    f"model_epochs_{best['epochs']}.pth")
assert os.path.exists(path), path
shutil.copy(path, "model.pth")
torch.manual_seed(0)  # the training data, drawn as train.py drew it
model = torch.nn.Linear(3, 2)
X, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
model.load_state_dict(torch.load("model.pth"))
print(best["epochs"], round(best["val_loss"], 6),
      round(float(torch.nn.functional.cross_entropy(model(X), y)), 6))
for row in hist.to_dict("records"):  # every epoch's file is the model of its row
    model.load_state_dict(torch.load(path.replace("_4.pth", f"_{row['epochs']}.pth")))
    assert abs(float(torch.nn.functional.cross_entropy(model(X), y)) - row["val_loss"]) < 1e-6
print("all", len(hist))
'''


def test_the_demo_registry_step_opens_flordb_checkpoint_files(repo):
    """The PDF-parser demo's export step: best row of the dataframe, then the checkpoint file
    at FlorDB's path under HOMEDIR, loaded with torch.load: it holds the model of that row."""
    pytest.importorskip("torch")
    run_script(repo, REGISTRY_TRAIN, env={"FLORDB_EPSILON": "1e9"})
    out = run_script(repo, EXPORT_CKPT, name="export_ckpt.py").stdout.split()
    epochs, logged, recomputed = int(out[0]), float(out[1]), float(out[2])
    assert 1 <= epochs <= 4 and logged == recomputed  # the file is the model of that row
    assert out[3:] == ["all", "4"]


def test_an_unwritable_homedir_leaves_checkpoints_alone(repo, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    proc = run_script(repo, '''
import numpy as np, flordb as flor
w = np.zeros(2)
with flor.checkpointing(w=w):
    for e in flor.loop("epoch", range(3)):
        w += 1
''', env={"FLORDB_HOME": str(blocked / "home"), "FLORDB_EPSILON": "1e9"})
    assert proc.stderr.count("checkpoint files are not linked") == 1
    from flordb.store.db import connect_reader

    conn = connect_reader(repo)
    try:
        assert conn.execute("SELECT COUNT(DISTINCT iter) FROM checkpoints").fetchone()[0] == 3
    finally:
        conn.close()


def test_query_over_flordb_table_layout(repo):
    """The tutorial's notebooks query FlorDB's ``logs``/``loops`` columns; flordb's own
    columns and tables stay as documented, and an empty result is ``None``."""
    out = run_script(repo, '''
import flordb as flor
for e in flor.loop("epoch", range(2)):
    for s in flor.loop("step", ["a", "b"]):
        flor.log("loss", 0.5 * e)
    flor.log("acc", e + 1)
flor.log("done", 3)
flor.commit()
q = flor.query("SELECT value_name, value, l.l_name, l.iteration, l.l_value, p.l_value AS epoch"
               " FROM logs JOIN loops AS l USING (ctx_id) LEFT JOIN loops AS p"
               " ON p.ctx_id = l.p_ctx_id ORDER BY value_name, epoch, l.iteration")
print(q.to_csv(index=False), end="")
print(flor.query("SELECT COUNT(*) AS n FROM loops")["n"][0])
top = flor.query("SELECT projid, filename, ctx_id, ctx, tstamp FROM logs WHERE name = 'done'")
print(top["projid"][0] == flor.PROJID, top["filename"][0], top["ctx_id"][0], top["ctx"][0],
      top["tstamp"].dtype.kind)
print(flor.query("SELECT ctx FROM logs WHERE name = 'loss' LIMIT 1")["ctx"][0])
print(flor.query("SELECT * FROM logs WHERE name = 'nothing'"))
''').stdout.splitlines()
    assert out[:7] == [
        "value_name,value,l_name,iteration,l_value,epoch",
        "acc,1.0,epoch,0,0,",
        "acc,2.0,epoch,1,1,",
        "loss,0.0,step,0,a,0.0",
        "loss,0.0,step,1,b,0.0",
        "loss,0.5,step,0,a,1.0",
        "loss,0.5,step,1,b,1.0"]
    assert out[7] == "3"  # flordb's loops: one row per loop instance
    assert out[8] == "True train.py None None M"
    assert out[9] == ('[{"name": "epoch", "iteration": 0, "value": 0}, '
                      '{"name": "step", "iteration": 0, "value": "a"}]')
    assert out[10] == "None"


def test_holes_compare_as_nan_like_the_split_step(repo):
    """The demo's split step derives first pages from colours with ``shift``: a hole must
    compare as NaN, not as ``pd.NA`` (whose ``astype(int)`` raises)."""
    out = run_script(repo, '''
import flordb as flor
for page in flor.loop("page", range(2)):
    flor.log("first_page", page == 0)
flor.commit()
with flor.iteration("document", None, "a"):
    for page in flor.loop("page", range(5)):
        flor.log("page_color", [0, 0, 1, 1, 0][page])
flor.commit()
df = flor.dataframe("first_page", "page_color")
print(df["page_color"].dtype, df["first_page"].dtype, df["page"].dtype)
df = flor.utils.latest(df)
print((df.shift(1)["page_color"] != df["page_color"]).astype(int).tolist())
''').stdout.splitlines()
    assert out == ["float64 object int64", "[1, 0, 1, 0, 1]"]
