"""The same workloads through flordb (this), flordb 4.0.1 (the upstream) and MLflow.

    python benchmarks/compare_upstream.py [--upstream-n 20000] [--mlflow-n 500]

Builds two virtualenvs under ``benchmarks/.venvs/`` (once): one with ``flordb==4.0.1``, one
with ``mlflow``. Each system logs N floats in a loop (``flor.log`` inside ``flor.loop``;
``mlflow.log_metric`` into a local SQLite store), in fresh processes inside temporary git
repositories, on this machine in this run. Prints per-call costs, ratios, commit times and
``import`` times. The slower systems get smaller N so the run ends in minutes; per-call cost
is what is compared.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench_record import import_time, project, workload

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"


def venv(name: str, *packages: str) -> str:
    """The python of a virtualenv with ``packages``, created on first use."""
    path = VENVS / name
    python = path / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return str(python)


def per_call_us(result: dict, bare: dict, scale: int) -> float:
    total = result["loop_s"] + result.get("exit_s", 0.0)
    return (total - bare["loop_s"] * result["n"] / scale) / result["n"] * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="values for this flordb")
    ap.add_argument("--upstream-n", type=int, default=20_000)
    ap.add_argument("--mlflow-n", type=int, default=500)
    args = ap.parse_args()
    upstream_py = venv("upstream", "flordb==4.0.1")
    mlflow_py = venv("mlflow", "mlflow")
    bare = workload(project(), "bare", str(args.n))
    ours_proj = project()
    workload(ours_proj, "flordb", "1000")  # records the environment once, as any project has
    ours = workload(ours_proj, "flordb", str(args.n))
    up = workload(project(), "upstream", str(args.upstream_n), python=upstream_py)
    ml = workload(project(), "mlflow", str(args.mlflow_n), python=mlflow_py)
    us = per_call_us(ours, bare, args.n)
    up_us = per_call_us(up, bare, args.n)
    ml_us = per_call_us(ml, bare, args.n)
    print(f"{'system':<16} {'N':>10} {'us/log':>10} {'vs flordb':>10} {'commit s':>9}")
    print(f"{'flordb (this)':<16} {args.n:>10,} {us:>10.3f} {1.0:>9.0f}x {ours['exit_s']:>9.3f}")
    print(f"{'flordb 4.0.1':<16} {args.upstream_n:>10,} {up_us:>10.3f} {up_us / us:>9.0f}x "
          f"{up['exit_s']:>9.3f}")
    print(f"{'mlflow sqlite':<16} {args.mlflow_n:>10,} {ml_us:>10.3f} {ml_us / us:>9.0f}x "
          f"{'-':>9}")
    print("import time above a bare interpreter: "
          f"flordb {import_time():.3f} s, flordb 4.0.1 {import_time(upstream_py):.3f} s, "
          f"mlflow {import_time(mlflow_py, 'mlflow'):.3f} s")


if __name__ == "__main__":
    main()
