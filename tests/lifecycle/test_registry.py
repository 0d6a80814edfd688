"""Registry views: best checkpoint by metric, feature-store and training-data frames."""

from __future__ import annotations

import numpy as np
import pytest

import flordb as flor
from flordb.lifecycle.registry import RegistryError


def test_best_checkpoint_by_metric_loads_the_weights_it_was_computed_from(runtime):
    flor.set_epsilon(1e9)  # a checkpoint at every epoch boundary
    weights = {}
    for lr, accs in ((0.1, [0.5, 0.7, 0.6]), (0.2, [0.55, 0.65, 0.9])):
        w = np.zeros(4)
        with flor.checkpointing(w=w):
            for epoch in flor.loop("epoch", range(3)):
                w += lr * (epoch + 1)
                flor.log("acc", accs[epoch])
                weights[(lr, epoch)] = w.copy()
        flor.commit()
    flor.set_epsilon(1 / 15)
    top = flor.best("acc", n=2)
    assert top["acc"].tolist() == [0.9, 0.7]
    assert top["epoch"].tolist() == [3, 2]
    assert top["checkpoint"].tolist() == [3, 2]
    target = np.full(4, -1.0)
    flor.load_checkpoint(top.iloc[0], w=target)
    np.testing.assert_array_equal(target, weights[(0.2, 2)])
    flor.load_checkpoint(top.iloc[[1]], w=target)
    np.testing.assert_array_equal(target, weights[(0.1, 1)])
    up = flor.lineage(top)  # the runs behind the two best rows
    assert set(up.loc[up["kind"] == "run", "ref"].astype(int)) == set(top["run_id"])
    assert flor.lineage(top.iloc[0]).loc[0, "ref"] == str(top["run_id"][0])
    worst = flor.best("acc", mode="min")
    assert worst["acc"].item() == 0.5
    with pytest.raises(RegistryError, match="no numeric value"):
        flor.best("nothing")


def test_missing_checkpoint_is_a_clear_error(runtime):
    flor.set_epsilon(1e-12)  # never checkpoint
    w = np.zeros(2)
    with flor.checkpointing(w=w):
        for epoch in flor.loop("epoch", range(2)):
            flor.log("acc", float(epoch))
    flor.commit()
    flor.set_epsilon(1 / 15)
    row = flor.best("acc")
    assert row["checkpoint"].isna().all()
    with pytest.raises(RegistryError, match="no checkpoint holds"):
        flor.load_checkpoint(row, w=w)


def test_feature_store_and_training_data_views(runtime, repo):
    docs = flor.dataset("docs", record_type="doc")
    docs.add(["d1", "d2", "d3"])
    v = docs.release()
    length = flor.feature("length", record_type="doc", columns={"value": int})
    stats = flor.feature("stats", record_type="doc", columns={"mean": float, "std": float})
    label = flor.feature("topic", record_type="doc", columns={"value": str},
                         vocabulary={"value": {"sports": [], "news": ["politics"]}})
    for i, d in enumerate(["d1", "d2", "d3"]):
        length.add(d, value=10 * (i + 1))
        stats.add(d, mean=float(i), std=1.0)
    label.add("d1", value="politics")
    label.add("d2", value="sports")
    store = flor.feature_store("doc")
    assert list(store.columns) == ["record_id", "length", "stats.mean", "stats.std", "topic"]
    assert store["topic"].tolist()[:2] == ["news", "sports"]
    data = flor.training_data(v, features=["length", "stats"], label="topic")
    assert data["record_id"].tolist() == ["d1", "d2", "d3"]
    assert data["length"].tolist() == [10, 20, 30]
    assert data["topic"].isna().tolist() == [False, False, True]
    run = runtime.run_id
    flor.commit()
    inputs = flor.query("SELECT kind, ref FROM run_io WHERE run_id = ? AND direction = 'input'"
                        " ORDER BY kind, ref", (run,))
    assert inputs.values.tolist() == [["dataset", "docs@1.0.0"], ["feature", "length"],
                                      ["feature", "stats"], ["feature", "topic"]]


def test_training_data_expands_nested_versions_and_keeps_a_features_own_column(runtime):
    """A model trained on a nested dataset gets its images (not the nested version's id), and
    a feature with columns grade/confidence comes back as grade and grade.confidence."""
    left = flor.dataset("left", record_type="image")
    left.add(["a.png", "b.png"])
    right = flor.dataset("right", record_type="image")
    right.add(["c.png"])
    both = flor.dataset("both", record_type="image")
    both.add([left.release(), right.release()])
    grade = flor.feature("grade", record_type="image",
                         columns={"grade": int, "confidence": float})
    for k, rid in enumerate(["a.png", "b.png", "c.png"]):
        grade.add(rid, grade=k, confidence=0.5 + k / 10)
    data = flor.training_data(both.release(), label="grade")
    assert data["record_id"].tolist() == ["a.png", "b.png", "c.png"]
    assert list(data.columns) == ["record_id", "grade", "grade.confidence"]
    assert [row["grade"] for _, row in data.iterrows()] == [0, 1, 2]
    assert flor.get_dataset("both").version().read(recursive=False)["record_id"].tolist() == [
        "left@1.0.0", "right@1.0.0"]


def test_looking_a_dataset_up_never_creates_one(repo):
    from conftest import run_script

    run_script(repo, '''
import flordb as flor
flor.dataset("images").add(["x.png"])
''')
    out = run_script(repo, '''
import flordb as flor
from flordb.lifecycle.datasets import DatasetError
print(flor.get_dataset("images").members()["record_id"].tolist())
try:
    flor.get_dataset("imgaes")
except DatasetError as exc:
    print("error:", exc)
print(flor.query("SELECT COUNT(*) AS n FROM runs")["n"][0], len(flor.datasets()))
''', name="read.py").stdout.splitlines()
    assert out[0] == "['x.png']" and out[1].startswith("error: no dataset named 'imgaes'")
    assert out[2] == "1 1"  # no run recorded, no dataset created by the lookups
