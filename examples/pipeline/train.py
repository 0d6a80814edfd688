"""Train a logistic-regression topic classifier on the feature store's training data."""

import numpy as np

import flordb as flor

COLUMNS = ["stats.length", "stats.digits", "stats.keywords"]


def matrix(frame):
    x = frame[COLUMNS].to_numpy(dtype=float)
    return (x - MEAN) / STD, (frame["topic"] == "sports").to_numpy(dtype=float)


corpus = flor.dataset("corpus", record_type="doc")
train_v = flor.dataset("corpus:train", record_type="doc").version(corpus.version().label)
test_v = flor.dataset("corpus:test", record_type="doc").version(corpus.version().label)
train = flor.training_data(train_v, features=["stats"], label="topic")
test = flor.training_data(test_v, features=["stats"], label="topic")
MEAN = train[COLUMNS].to_numpy(dtype=float).mean(axis=0)
STD = train[COLUMNS].to_numpy(dtype=float).std(axis=0)
X, y = matrix(train)
Xt, yt = matrix(test)

lr = flor.arg("lr", 0.5)
w = np.zeros(X.shape[1] + 1)  # weights and bias, and the normalization, in one array
norm = np.concatenate([MEAN, STD])
with flor.checkpointing(w=w, norm=norm):
    for epoch in flor.loop("epoch", range(flor.arg("epochs", 20))):
        p = 1 / (1 + np.exp(-(X @ w[:-1] + w[-1])))
        w[:-1] -= lr * X.T @ (p - y) / len(y)
        w[-1] -= lr * np.mean(p - y)
        flor.log("loss", float(-np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9))))
        flor.log("acc", float(np.mean(((Xt @ w[:-1] + w[-1]) > 0) == yt)))
print(f"trained: test accuracy {flor.dataframe('acc')['acc'].iloc[-1]:.3f}")
