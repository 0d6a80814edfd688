"""Make the screenshots of the web view under docs/images (needs chromium and playwright).

    python docs/screenshots.py

Builds a small demo project in a temporary directory: a sweep of 6 runs over 2 versions of a
script, a hindsight replay and a dataset, serves it with ``flordb.ui`` and photographs the
main pages with headless Chromium.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

OUT = Path(__file__).resolve().parent / "images"
SCRIPT = '''
import numpy as np
import flordb as flor

rng = np.random.default_rng(0)
X = rng.normal(size=(400, 6))
y = (X @ rng.normal(size=6) > 0).astype(float)
lr = flor.arg("lr", 0.1)
batch = flor.arg("batch", 32)
w = np.zeros(6)
with flor.checkpointing(w=w, rng=rng):
    for epoch in flor.loop("epoch", range(8)):
        for step in flor.loop("step", range(25)):
            idx = rng.integers(0, len(X), size=batch)
            p = 1 / (1 + np.exp(-X[idx] @ w))
            w -= lr * X[idx].T @ (p - y[idx]) / batch
            flor.log("loss", float(-np.mean(y[idx] * np.log(p + 1e-9)
                                            + (1 - y[idx]) * np.log(1 - p + 1e-9))))
        flor.log("acc", float(np.mean((X @ w > 0) == y)))
'''


def sh(cwd: Path, *cmd: str) -> None:
    env = {**os.environ, "FLORDB_ECHO": "0", "GIT_AUTHOR_NAME": "demo",
           "GIT_AUTHOR_EMAIL": "demo@example.com", "GIT_COMMITTER_NAME": "demo",
           "GIT_COMMITTER_EMAIL": "demo@example.com"}
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env=env)


def demo(root: Path) -> None:
    sh(root, "git", "init", "-q")
    (root / "train.py").write_text(SCRIPT)
    sh(root, "git", "add", "train.py")
    sh(root, "git", "commit", "-qm", "train")
    for lr in ("0.05", "0.1", "0.3"):
        sh(root, sys.executable, "train.py", "--kwargs", f"lr={lr}")
    (root / "train.py").write_text(SCRIPT.replace("range(25)", "range(40)"))
    sh(root, "git", "commit", "-qam", "more steps")
    for lr in ("0.05", "0.1", "0.3"):
        sh(root, sys.executable, "train.py", "--kwargs", f"lr={lr}", "batch=64")
    (root / "train.py").write_text((root / "train.py").read_text().replace(
        '        flor.log("acc"', '        flor.log("w_norm", float(np.linalg.norm(w)))\n'
        '        flor.log("acc"'))
    sh(root, "flordb", "replay", "w_norm", "--yes")


def main() -> None:
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from flordb.ui import create_app

    root = Path(tempfile.mkdtemp(prefix="flordb-demo-")) / "demo"
    root.mkdir()
    demo(root)
    server = make_server("127.0.0.1", 0, create_app(root), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    OUT.mkdir(exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                        args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 640})
            for name, url in (("runs", "/?metrics=acc max, loss last"),
                              ("metrics", "/metrics?name=loss&x=epoch&group=lr"),
                              ("scatter", "/scatter"),
                              ("compare", "/compare?run=1&run=6"),
                              ("replays", "/replays"),
                              ("dataframe", "/dataframe?names=lr,acc,w_norm&col=epoch&op=%3D%3D"
                                            "&value=8")):
                page.goto(base + url)
                page.wait_for_load_state("networkidle")
                if name in ("metrics", "scatter"):
                    page.wait_for_function("document.body.dataset.drawn")
                page.screenshot(path=str(OUT / f"ui-{name}.png"), full_page=False)
            browser.close()
    finally:
        server.shutdown()
        shutil.rmtree(root.parent, ignore_errors=True)
    print("\n".join(str(p) for p in sorted(OUT.glob("ui-*.png"))))


if __name__ == "__main__":
    main()
