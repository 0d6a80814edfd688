"""Load the best model from the registry and store its predictions as a feature."""

import numpy as np

import flordb as flor

best = flor.best("acc")
w, norm = np.zeros(4), np.zeros(6)
flor.load_checkpoint(best, w=w, norm=norm)
mean, std = norm[:3], norm[3:]

corpus = flor.dataset("corpus", record_type="doc").version()
data = flor.training_data(corpus, features=["stats"])
X = (data[["stats.length", "stats.digits", "stats.keywords"]].to_numpy(dtype=float) - mean) / std
p = 1 / (1 + np.exp(-(X @ w[:-1] + w[-1])))
prediction = flor.feature("prediction", record_type="doc",
                          columns={"label": str, "confidence": float},
                          vocabulary={"label": {"sports": [], "news": []}})
model = f"model:{best['tstamp'].item()}"
prediction.add_many([{"record_id": r, "label": "sports" if q > 0.5 else "news",
                      "confidence": float(max(q, 1 - q))} for r, q in zip(data["record_id"], p)],
                    annotator=model, workflow="inference")
print(f"stored {len(data)} predictions of {model} (acc {best['acc'].item():.3f}, "
      f"epoch {best['epoch'].item()})")
