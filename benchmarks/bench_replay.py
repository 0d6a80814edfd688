"""Replay versus re-running from scratch, and parallel speed-up, measured side by side.

    python benchmarks/bench_replay.py [--epochs 10] [--steps 200] [--size 384] [--device cpu]

Records 4 runs (2 versions of a training script, 2 learning rates each) in a temporary git
repository, with the default adaptive checkpointing. The inner (step) loop dominates the work.
Then, on that history:

1. an outer-loop statement (after the inner loop, reading the enrolled weights) is replayed
   on 1, 2 and N workers, and the same patched versions are re-run from scratch one after the
   other;
2. an inner-loop statement (nothing can be skipped) is replayed on 1, 2 and N workers
   (N = cores), from a fresh copy of the history each time: 4 independent units.

With 4 runs that differ only in ``lr`` (no branch reads it), each version gets one cross-check
(one iteration executed in full); ``--verify none`` is timed beside it for the verification's
share. Children run single-threaded (``OMP_NUM_THREADS=1`` and friends) so that workers, not BLAS
threads, are what is measured. ``--device cuda`` runs the torch variant on the GPU.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = '''
import flordb as flor
import numpy as np

rng = np.random.default_rng(0)
A = rng.normal(size=(SIZE, SIZE)) / SIZE
w = rng.normal(size=(SIZE, SIZE)) / SIZE
lr = flor.arg("lr", 0.01)
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(EPOCHS)):
        for step in flor.loop("step", range(STEPS)):
            g = np.tanh(A @ w) @ A.T
            w -= lr * g
            flor.log("loss", float(np.abs(g).mean()))
        flor.log("val", float(np.abs(w).mean()))
'''

TORCH_SCRIPT = '''
import flordb as flor
import torch

torch.manual_seed(0)
dev = "DEVICE"
A = torch.randn(SIZE, SIZE, device=dev) / SIZE
w = torch.nn.Linear(SIZE, SIZE).to(dev)
opt = torch.optim.SGD(w.parameters(), lr=flor.arg("lr", 0.01))
with flor.checkpointing(w=w, opt=opt):
    for epoch in flor.loop("epoch", range(EPOCHS)):
        for step in flor.loop("step", range(STEPS)):
            loss = torch.tanh(w(A)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            flor.log("loss", loss.item())
        flor.log("val", float(w.weight.abs().mean()))
'''

OUTER = ('        flor.log("val"', '        flor.log("w_max", float(WMAX))\n        flor.log("val"')
INNER = ('            flor.log("loss"', '            flor.log("g_max", float(GMAX))\n'
         '            flor.log("loss"')
SINGLE = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def sh(cwd: Path, *cmd: str) -> float:
    return run(cwd, *cmd)[0]


def run(cwd: Path, *cmd: str) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "FLORDB_ECHO": "0", **SINGLE})
    return time.perf_counter() - t, proc.stdout


def script(args: argparse.Namespace, version: int) -> str:
    code = TORCH_SCRIPT.replace("DEVICE", args.device) if args.torch else SCRIPT
    code = code.replace("SIZE", str(args.size)).replace("EPOCHS", str(args.epochs)) \
        .replace("STEPS", str(args.steps))
    if version == 2:  # a refactor: renamed variable
        code = re.sub(r"\bA\b", "data", code)
    return code


def patched(code: str, where: tuple[str, str], torch: bool) -> str:
    value = ("w.weight.abs().max()" if torch else "np.abs(w).max()") if where is OUTER else \
        ("loss.detach().abs().max()" if torch else "np.abs(g).max()")
    return code.replace(where[0], where[1].replace("WMAX", value).replace("GMAX", value), 1)


def record(root: Path, args: argparse.Namespace) -> float:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    total = 0.0
    for version in (1, 2):
        (root / "train.py").write_text(script(args, version))
        sh(root, "git", "add", "-A")
        sh(root, "git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", f"v{version}")
        for lr in ("0.01", "0.02"):
            total += sh(root, sys.executable, "train.py", "--kwargs", f"lr={lr}")
    return total


def from_scratch(root: Path, args: argparse.Namespace, where: tuple[str, str]) -> float:
    """Run each run's patched version from the start, one after the other."""
    total = 0.0
    for version in (1, 2):
        code = patched(script(args, version), where, args.torch)
        for lr in ("0.01", "0.02"):
            d = Path(tempfile.mkdtemp(prefix="flordb-scratch-"))
            subprocess.run(["git", "init", "-q", str(d)], check=True)
            (d / "train.py").write_text(code)
            total += sh(d, sys.executable, "train.py", "--kwargs", f"lr={lr}")
            shutil.rmtree(d)
    return total


def replay(root: Path, name: str, workers: int, verify: str = "args") -> float:
    seconds, out = run(root, "flordb", "replay", name, "--yes", "--workers", str(workers),
                       "--verify", verify)
    strategies = sorted({line.split(": ", 1)[1].split(";")[0] for line in out.splitlines()
                         if line.startswith("  run ") and "(version" not in line})
    checks = sum(1 for line in out.splitlines() if "cross-check at iteration" in line)
    agreed = sum(int(m) for m in re.findall(r"checkpoint at (\d+) boundar", out))
    print(f"  ({name}, {workers} worker(s), --verify {verify}: {', '.join(strategies)}; "
          f"{checks} cross-check(s), {agreed} boundaries equal to the recording)")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--device", default=None, help="run the torch variant on this device")
    args = ap.parse_args()
    args.torch = args.device is not None
    cores = os.cpu_count() or 1
    base = Path(tempfile.mkdtemp(prefix="flordb-bench-replay-"))
    history = base / "history"
    t_record = record(history, args)
    print(f"recorded 4 runs ({args.epochs} epochs x {args.steps} steps, "
          f"{'torch ' + args.device if args.torch else 'numpy'}): {t_record:.2f}s")

    def fresh(tag: str, where: tuple[str, str]) -> Path:
        copy = base / tag
        shutil.copytree(history, copy, symlinks=True)
        (copy / "train.py").write_text(patched((history / "train.py").read_text(), where,
                                               args.torch))
        return copy

    outer = {w: replay(fresh(f"outer{w}", OUTER), "w_max", w) for w in sorted({1, 2, cores})}
    t_replay = outer[1]
    t_unchecked = replay(fresh("outer-unchecked", OUTER), "w_max", 1, verify="none")
    t_scratch = from_scratch(base, args, OUTER)
    print(f"outer-loop statement, 1 worker: replay {t_replay:.2f}s, from scratch "
          f"{t_scratch:.2f}s -> {t_scratch / t_replay:.1f}x faster")
    print(f"  verification's share: {t_replay - t_unchecked:.2f}s of {t_replay:.2f}s "
          f"({(t_replay - t_unchecked) / t_replay:.0%}); without it (--verify none) "
          f"{t_unchecked:.2f}s, {t_scratch / t_unchecked:.1f}x")
    for workers, t in outer.items():
        print(f"outer-loop statement, {workers} worker(s): {t:.2f}s, speed-up "
              f"{t_replay / t:.2f}x (efficiency {t_replay / t / workers:.2f})")
    times = {}
    for workers in sorted({1, 2, cores}):
        times[workers] = replay(fresh(f"inner{workers}", INNER), "g_max", workers)
    t1 = times[1]
    for workers, t in times.items():
        print(f"inner-loop statement, {workers} worker(s): {t:.2f}s, speed-up "
              f"{t1 / t:.2f}x (efficiency {t1 / t / workers:.2f})")
    print(f"machine: {cores} cores")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
