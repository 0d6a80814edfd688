"""How fast the web view shows the runs table, with N runs in the store.

    python benchmarks/bench_ui.py [--runs 200]

Records N runs (one process committing a run per configuration, each with 3 args, an epoch
loop and a step loop) in a temporary git repository, serves ``flordb.ui`` on a real HTTP
server and measures, best of 5: the server's time to answer ``/`` (urllib), and, when
Chromium and playwright are installed, the browser's time from navigation to the load event
of the runs table, to a drawn interactive chart of all runs (per step, and per epoch grouped
by an arg), and to the runs table with a metric column.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

RECORD = '''
import flordb as flor
for i in range(N):
    lr = flor.arg("lr", 0.001 * (i + 1))
    flor.arg("batch", 32 * (1 + i % 4))
    flor.arg("seed", i)
    for epoch in flor.loop("epoch", range(5)):
        for step in flor.loop("step", range(20)):
            flor.log("loss", lr * step)
        flor.log("acc", lr * epoch)
    flor.commit()
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="flordb-bench-ui-"))
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "sweep.py").write_text(RECORD.replace("N", str(args.runs)))
    t = time.perf_counter()
    subprocess.run([sys.executable, "sweep.py"], cwd=root, check=True,
                   env={**os.environ, "FLORDB_ECHO": "0"})
    print(f"recorded {args.runs} runs in {time.perf_counter() - t:.1f}s")

    from werkzeug.serving import make_server

    from flordb.ui import create_app

    server = make_server("127.0.0.1", 0, create_app(root), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    try:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            body = urllib.request.urlopen(url).read()
            times.append(time.perf_counter() - t)
        assert body.count(b"<tr data-run=") == args.runs
        print(f"server answers / with {args.runs} runs in {min(times) * 1000:.0f} ms "
              f"(best of 5; {len(body) / 1024:.0f} KiB)")
        chromium = shutil.which("chromium")
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            chromium = None
        if chromium:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page()
                loads = []
                for _ in range(5):
                    t = time.perf_counter()
                    page.goto(url, wait_until="load")
                    loads.append(time.perf_counter() - t)
                rows = page.locator("#runs tr[data-run]").count()
                charts = {}
                for what, path in (("loss per step", "metrics?name=loss"),
                                   ("acc per epoch, grouped by batch",
                                    "metrics?name=acc&x=epoch&group=batch"),
                                   ("acc max for every run", "?metrics=acc max")):
                    draws = []
                    for _ in range(5):
                        t = time.perf_counter()
                        page.goto(url + path, wait_until="load")
                        if path.startswith("metrics"):
                            page.wait_for_function("document.body.dataset.drawn")
                        draws.append(time.perf_counter() - t)
                    charts[what] = min(draws)
                browser.close()
            print(f"chromium loads the runs table ({rows} rows) in {min(loads) * 1000:.0f} ms "
                  f"(best of 5)")
            for what, seconds in charts.items():
                print(f"chromium shows {what} ({args.runs} runs) in {seconds * 1000:.0f} ms, "
                      f"navigation to drawn chart (best of 5)")
    finally:
        server.shutdown()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
