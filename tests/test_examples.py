"""The examples do what README and their docstrings say."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from conftest import make_repo, run_script

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
    replayed = dataframe(repo, ["w_norm"])
    fresh = make_repo(tmp_path / "fresh")
    (fresh / "quickstart.py").write_text(patched)
    run_script(fresh, None, name="quickstart.py")
    run_script(fresh, None, "--kwargs", "lr=0.3", "epochs=3", name="quickstart.py")
    assert replayed["w_norm"].tolist() == dataframe(fresh, ["w_norm"])["w_norm"].tolist()
    assert replayed["w_norm"].notna().sum() == 8
