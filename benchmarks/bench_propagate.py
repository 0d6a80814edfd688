"""Propagation speed: a 1,000-line file pair, and 3 statements into 100 past versions.

    python benchmarks/bench_propagate.py

The script is generated: helper functions followed by a training loop; past versions rename
variables, drop and add lines. Times include parsing both versions, GumTree matching and
patching, on one core.
"""

from __future__ import annotations

import random
import time

from flordb.hindsight.propagate import Propagator, propagate


def script(n_helpers: int, version: int, with_logs: bool) -> str:
    rng = random.Random(version)
    lines = ["import flordb as flor", "import numpy as np", ""]
    for i in range(n_helpers):
        var = f"v{i}_{version % 3}" if rng.random() < 0.3 else f"v{i}"
        lines += [f"def helper_{i}(x, y):",
                  f"    {var} = np.dot(x, y) + {i}",
                  f"    for k in range({i % 7 + 1}):",
                  f"        {var} = {var} * 0.5 + k",
                  f"    return {var}", ""]
        if rng.random() < 0.05:
            lines.insert(-1, f"    # note {version}")
    loss = "loss" if version % 2 else "l"
    lines += ["model = init()",
              'for epoch in flor.loop("epoch", range(10)):',
              '    for batch in flor.loop("step", data):',
              f"        {loss} = model.step(batch)",
              *([f'        flor.log("loss", {loss})'] if with_logs else []),
              "        model.update()",
              "    acc = model.evaluate()",
              *(['    flor.log("acc", acc)'] if with_logs else []),
              "    model.save()",
              "final = model.test()",
              *(['flor.log("final", final)'] if with_logs else [])]
    return "\n".join(lines) + "\n"


def main() -> None:
    new = script(165, 1, True)
    old = script(165, 2, False)
    t = time.perf_counter()
    result = propagate(new, old, names=["loss", "acc", "final"])
    pair = time.perf_counter() - t
    assert result.ok, [p.describe() for p in result.placements]
    print(f"1 pair ({len(new.splitlines())} and {len(old.splitlines())} lines, 3 statements):"
          f" {pair:.2f} s")
    versions = [script(165, v, False) for v in range(2, 102)]
    t = time.perf_counter()
    placed = 0
    carry = Propagator(new, names=["loss", "acc", "final"])
    for old in versions:
        r = carry.into(old, locate_lines=False)
        placed += sum(p.status == "placed" for p in r.placements)
    total = time.perf_counter() - t
    print(f"100 versions, 3 statements each: {total:.1f} s ({placed}/300 placed)")


if __name__ == "__main__":
    main()
