"""Checkpointing overhead, measured side by side in one run.

    python benchmarks/bench_checkpoint.py [--repeat 3] [--device cpu|cuda]

Runs each workload of ``_ckpt_workload.py`` with and without ``flor.checkpointing``, in fresh
processes, alternating, ``--repeat`` times, and compares the median wall times of the training
loop. Both variants use ``flor.loop``/``flor.log``, so the difference is the checkpoints alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(kind: str, mode: str, device: str) -> dict:
    cwd = tempfile.mkdtemp(prefix="flordb-ckpt-")
    subprocess.run(["git", "init", "-q", cwd], check=True)
    proc = subprocess.run([sys.executable, str(HERE / "_ckpt_workload.py"), kind, mode, device],
                          cwd=cwd, capture_output=True, text=True, check=True,
                          env={**os.environ, "FLORDB_ECHO": "0"})
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    print(f"{'workload':<28} {'off s':>7} {'on s':>7} {'overhead':>9} {'ckpts':>6} {'MB':>8}")
    for kind, label in (("torch", f"typical: torch MLP ({args.device})"),
                        ("state", "expensive: 100 MB state")):
        if kind == "state" and args.device != "cpu":
            continue
        off, on = [], []
        for _ in range(args.repeat):
            off.append(run(kind, "off", args.device))
            on.append(run(kind, "on", args.device))
        t_off = statistics.median(r["wall"] for r in off)
        t_on = statistics.median(r["wall"] for r in on)
        last = on[-1]
        print(f"{label:<28} {t_off:>7.2f} {t_on:>7.2f} {100 * (t_on / t_off - 1):>8.2f}% "
              f"{last['checkpoints']:>6} {last['bytes'] / 2**20:>8.1f}")
    print("epsilon (budget) = 6.67 %")


if __name__ == "__main__":
    main()
