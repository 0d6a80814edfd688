"""The user guide runs: every code block of these pages, in order, in a fresh project.

A ``python`` block whose first line is ``# file: NAME`` is written to NAME; other ``python``
blocks run as one script (a ``bash`` block or the end of the page runs what came before it);
``bash`` blocks run line by line and must succeed. Blocks in other languages are not run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GIT_ENV, make_repo

DOCS = Path(__file__).resolve().parent.parent / "docs"
GUIDE = ["quickstart.md", "guide.md", "hindsight.md", "lifecycle.md", "ui.md"]
BLOCK = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)


def blocks(page: str) -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in BLOCK.findall((DOCS / page).read_text())]


@pytest.mark.parametrize("page", GUIDE)
def test_every_code_block_runs(page, tmp_path):
    repo = make_repo(tmp_path / "proj")
    env = {**os.environ, **GIT_ENV, "FLORDB_ECHO": "0", "MPLBACKEND": "Agg",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    pending: list[str] = []
    ran = 0

    def run_python() -> None:
        nonlocal ran
        if pending:
            (repo / "_doc_block.py").write_text("\n".join(pending))
            proc = subprocess.run([sys.executable, "_doc_block.py"], cwd=repo, env=env,
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, f"{page}:\n{pending}\n{proc.stderr}"
            pending.clear()
            ran += 1

    for lang, body in blocks(page):
        if lang == "python":
            first = body.splitlines()[0] if body.strip() else ""
            if first.startswith("# file: "):
                target = repo / first[len("# file: "):].strip()
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(body)
            else:
                pending.append(body)
        elif lang == "bash":
            run_python()
            for line in body.splitlines():
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                proc = subprocess.run(["bash", "-e", "-c", line], cwd=repo, env=env,
                                      capture_output=True, text=True, timeout=300)
                assert proc.returncode == 0, f"{page}: {line}\n{proc.stdout}\n{proc.stderr}"
                ran += 1
    run_python()
    assert ran, f"{page} has no runnable block"
    shutil.rmtree(repo / ".flor", ignore_errors=True)


def test_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    root = DOCS.parent
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=root, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "flordb.log" in api or "log(" in api
    assert "replay" in api and "training_data" in api
