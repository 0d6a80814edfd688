"""Quickstart: a logistic-regression training loop logged with flordb.

Runs in a second on a CPU with data it makes itself:

    python examples/quickstart.py
    python examples/quickstart.py --kwargs lr=0.3 epochs=8
    flordb dataframe lr epochs acc

Hindsight logging: add ``flor.log("w_norm", float(np.linalg.norm(w)))`` as the first line of
the epoch loop, then ``flordb replay w_norm --yes`` fills it in for the runs above (from the
checkpoints of ``w`` and ``rng``, skipping the step loops).
"""

import numpy as np

import flordb as flor

rng = np.random.default_rng(0)  # the script's own generator: flordb never touches it
X = rng.normal(size=(2000, 10))
w_true = rng.normal(size=10)
y = (X @ w_true + 0.5 * rng.normal(size=2000) > 0).astype(float)

lr = flor.arg("lr", 0.1)
epochs = flor.arg("epochs", 5)
batch_size = flor.arg("batch_size", 100)

w = np.zeros(10)
with flor.checkpointing(w=w, rng=rng):  # what replay restores instead of recomputing
    for epoch in flor.loop("epoch", range(epochs)):
        order = rng.permutation(len(X))
        for step in flor.loop("step", range(len(X) // batch_size)):
            idx = order[step * batch_size:(step + 1) * batch_size]
            p = 1 / (1 + np.exp(-X[idx] @ w))
            loss = -np.mean(y[idx] * np.log(p + 1e-9) + (1 - y[idx]) * np.log(1 - p + 1e-9))
            w -= lr * X[idx].T @ (p - y[idx]) / batch_size
            flor.log("loss", float(loss))
        acc = float(np.mean((X @ w > 0) == y))
        flor.log("acc", acc)

print(flor.dataframe("lr", "epochs", "acc").tail(epochs).to_string(index=False))
