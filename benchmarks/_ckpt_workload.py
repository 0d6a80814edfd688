"""One checkpointing workload in a fresh process: ``python _ckpt_workload.py KIND on|off``.

KIND ``torch``: a small MLP trained for 12 epochs of 150 steps on data made here (checkpoint
cheap relative to an epoch). KIND ``state``: 200 iterations of ~30 ms of compute mutating
100 MB of numpy state (checkpoint expensive relative to an iteration). Prints one JSON line.
"""

import contextlib
import json
import sys
import time

import flordb as flor

kind, mode = sys.argv[1], sys.argv[2]
device = sys.argv[3] if len(sys.argv) > 3 else "cpu"
if kind == "torch":
    import torch

    torch.manual_seed(0)
    X = torch.randn(9600, 64, device=device)
    y = (X[:, :8].sum(1) > 0).long()
    net = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.ReLU(),
                              torch.nn.Linear(512, 512), torch.nn.ReLU(),
                              torch.nn.Linear(512, 2)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    objs = {"net": net, "opt": opt}

    def epoch_body():
        perm = torch.randperm(len(X), device=device)
        for i in flor.loop("step", range(150)):
            idx = perm[(i * 64) % len(X):(i * 64) % len(X) + 64]
            loss = torch.nn.functional.cross_entropy(net(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device != "cpu":
            torch.cuda.synchronize()
        flor.log("loss", loss.item())

    epochs = 12
else:
    import numpy as np

    big = np.zeros(12_500_000)  # 100 MB
    objs = {"big": big}
    rng = np.random.default_rng(0)

    def epoch_body():
        big[rng.integers(0, len(big), 1000)] += 1.0
        t = time.perf_counter()
        while time.perf_counter() - t < 0.03:
            pass

    epochs = 200

block = flor.checkpointing(**objs) if mode == "on" else contextlib.nullcontext()
t = time.perf_counter()
with block:
    for epoch in flor.loop("epoch", range(epochs)):
        epoch_body()
wall = time.perf_counter() - t
flor.commit()
ck = flor.query("SELECT COUNT(DISTINCT iter) AS n, COALESCE(SUM(bytes), 0) AS bytes"
                " FROM checkpoints").iloc[0]
print(json.dumps({"wall": wall, "checkpoints": int(ck["n"]), "bytes": int(ck["bytes"])}))
