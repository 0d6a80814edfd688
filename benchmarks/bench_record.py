"""Record-path figures, measured side by side in one run on this machine.

    python benchmarks/bench_record.py [--sizes 100000,1000000,10000000]

For each N: ``flor.log(float)`` inside ``flor.loop`` versus the bare loop (per-call cost,
flushes and commit included), peak RSS versus a no-logging process, and the commit time. Then
``flor.dataframe`` of one and of three names over 10^6 rows, of one name logged 3 x 10^6 times
in a plain inner loop (every value a row), and ``import flordb``. Every
workload runs in its own fresh process inside one temporary git repository; a first short run
is timed apart, since it alone pays for recording the environment of the project's store.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def project() -> Path:
    path = Path(tempfile.mkdtemp(prefix="flordb-bench-"))
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def workload(cwd: Path, *args: str, python: str = sys.executable) -> dict:
    env = {**os.environ, "FLORDB_ECHO": "0"}
    proc = subprocess.run([python, str(HERE / "_workload.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{"mode"')]
    return json.loads(lines[-1])  # other systems print after it, at exit


def import_time(python: str = sys.executable, module: str = "flordb", repeat: int = 5) -> float:
    """Best wall time of ``python -c 'import module'`` minus the bare interpreter's."""
    import time

    def best(code: str) -> float:
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            subprocess.run([python, "-c", code], check=True, capture_output=True)
            times.append(time.perf_counter() - t)
        return min(times)

    return best(f"import {module}") - best("pass")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    sizes = [int(s) for s in ap.parse_args().sizes.split(",")]
    proj = project()
    first = workload(proj, "flordb", "1000")
    print(f"first run in a new store: commit {first['exit_s']:.3f} s (environment recorded once)")
    print(f"{'N':>10} {'bare ns/it':>10} {'flor ns/it':>10} {'log cost ns':>11} "
          f"{'RSS +MB':>8} {'commit s':>9}")
    for n in sizes:
        bare = workload(proj, "bare", str(n))
        flor = workload(proj, "flordb", str(n))
        per_call = (flor["loop_s"] + flor["exit_s"] - bare["loop_s"]) / n * 1e9
        print(f"{n:>10,} {bare['loop_s'] / n * 1e9:>10.0f} "
              f"{(flor['loop_s'] + flor['exit_s']) / n * 1e9:>10.0f} {per_call:>11.0f} "
              f"{flor['maxrss_mb'] - bare['maxrss_mb']:>8.1f} {flor['exit_s']:>9.3f}")
    proj = project()
    workload(proj, "flordb", "1000000", "x,y,z")
    one = workload(proj, "dataframe", "0", "x")
    three = workload(proj, "dataframe", "0", "x,y,z")
    print(f"dataframe over 10^6 rows: one name {one['dataframe_s']:.3f} s ({one['rows']:,} rows),"
          f" three names {three['dataframe_s']:.3f} s ({three['rows']:,} rows)")
    proj = project()
    for _ in range(3):
        workload(proj, "inner", "1000000")
    every = workload(proj, "dataframe", "0", "x")
    print(f"dataframe of 3 runs x 10^6 values logged in a plain inner loop (every value a row):"
          f" {every['dataframe_s']:.3f} s ({every['rows']:,} rows)")
    print(f"import flordb: {import_time():.3f} s above a bare interpreter")


if __name__ == "__main__":
    main()
