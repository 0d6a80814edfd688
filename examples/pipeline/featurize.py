"""Make a small corpus, version it as a dataset, and store its features and weak labels.

Documents are synthetic: a topic ("sports" or "news") decides their word statistics. The
features (length, digit share, a keyword score) and the heuristic labels go to the feature
store; the dataset version and its seeded train/test split are what training reads.
"""

import numpy as np

import flordb as flor

rng = np.random.default_rng(flor.arg("seed", 0))
n = flor.arg("documents", 300)
topics = rng.choice(["sports", "news"], size=n)
length = np.where(topics == "sports", rng.normal(120, 30, n), rng.normal(220, 40, n))
digits = np.where(topics == "sports", rng.beta(5, 20, n), rng.beta(2, 30, n))
keywords = np.where(topics == "sports", rng.normal(1.0, 0.7, n), rng.normal(-1.0, 0.7, n))
ids = [f"doc{i:04d}" for i in range(n)]

corpus = flor.dataset("corpus", record_type="doc", description="synthetic documents")
corpus.add(ids)
version = corpus.release()  # the same corpus again returns the same version
splits = version.split({"train": 0.8, "test": 0.2}, seed=0)

stats = flor.feature("stats", record_type="doc",
                     columns={"length": float, "digits": float, "keywords": float})
stats.add_many([{"record_id": i, "length": float(a), "digits": float(b), "keywords": float(c)}
                for i, a, b, c in zip(ids, length, digits, keywords)])
topic = flor.feature("topic", record_type="doc", columns={"value": str},
                     vocabulary={"value": {"sports": ["sport"], "news": ["politics"]}})
# Weak labels from a heuristic: right most of the time, wrong on purpose now and then.
noisy = np.where(rng.random(n) < 0.1, np.where(topics == "sports", "news", "sports"), topics)
topic.add_many([{"record_id": i, "value": str(t)} for i, t in zip(ids, noisy)],
               annotator="heuristic", workflow="weak-labels")
flor.log("documents", n)
print(f"featurized {n} documents into corpus@{version.label} "
      f"(train {splits['train'].n_members}, test {splits['test'].n_members})")
