"""Lineage both ways, played on the paper's scenario: a poisoned dataset version."""

from __future__ import annotations

import numpy as np
import pytest

import flordb as flor


def train(runtime, reads, writes: str, label: str | None = None) -> int:
    """One 'training run': read its inputs, write a model file, commit; returns its run id."""
    for source in reads:
        if isinstance(source, str):
            flor.input(source)
        else:
            flor.training_data(source, label=label) if label else source.read()
    np.save(writes, np.arange(3) * len(reads))
    flor.output(writes)
    run = runtime.run_id
    flor.commit()
    return run


def test_poisoned_dataset_names_every_model_trained_on_it(runtime, repo):
    scans = flor.dataset("scans", record_type="row")
    scans.add([f"scan{i}" for i in range(10)])
    v1 = scans.release("1.0.0")
    splits = v1.split({"train": 0.8, "test": 0.2}, seed=0)
    scans.remove("scan9")  # the poisoned record is found and removed
    v2 = scans.release("2.0.0")
    suite = flor.dataset("suite", record_type="row")
    suite.add(v1)
    suite_v = suite.release()
    flor.commit()

    labels = flor.feature("quality", record_type="row", columns={"value": str})
    for i in range(9):
        labels.add(f"scan{i}", value="good", annotator="alice", workflow="review")
    labelling = runtime.run_id
    flor.commit()

    a = train(runtime, [v1], "model_a.npy")
    b = train(runtime, [splits["train"]], "model_b.npy")
    c = train(runtime, [v2], "model_c.npy")
    d = train(runtime, ["model_a.npy"], "model_d.npy")     # fine-tuned from model_a
    e = train(runtime, [v2], "model_e.npy", label="quality")
    f = train(runtime, [suite_v], "model_f.npy")            # v1 nested in another dataset

    hit = flor.derived("scans@1.0.0")
    models = set(hit.loc[hit["kind"] == "file", "ref"].str.split("@").str[0])
    assert models == {"model_a.npy", "model_b.npy", "model_d.npy", "model_f.npy"}
    runs = set(hit.loc[hit["kind"] == "run", "ref"].astype(int))
    assert runs == {a, b, d, f}
    assert "dataset" in set(hit["kind"]) and "scans:train@1.0.0" in set(hit["ref"])
    assert not (set(hit["ref"]) & {str(c), str(e)})

    up = flor.lineage("model_d.npy")
    assert {str(d), str(a)} <= set(up.loc[up["kind"] == "run", "ref"])
    assert "scans@1.0.0" in set(up["ref"])
    run_row = up[(up["kind"] == "run") & (up["ref"] == str(d))].iloc[0]
    assert run_row["snapshot"] and run_row["env_hash"] and run_row["status"] == "completed"
    labelled = flor.lineage("model_e.npy")
    assert {f"quality read by run {e}", str(labelling), "scans@2.0.0"} <= set(labelled["ref"])
    assert "scans@1.0.0" not in set(labelled["ref"])
    with pytest.raises(LookupError, match="nothing in the lineage"):
        flor.lineage("nope.npy")


def test_labels_as_of_a_training_and_lineage_in_time(runtime):
    """Model D read the labels of two graders; a third grades later. Reading as of D's run
    gives exactly what D read, and D's lineage names only the graders before it."""
    import time

    images = flor.dataset("fundus", record_type="image")
    images.add([f"i{k}.png" for k in range(6)])
    v = images.release()
    grade = flor.feature("dr_grade", record_type="image", columns={"value": int})
    graders = []
    for who, offset in (("ann", 0), ("bob", 1)):
        for k in range(6):
            grade.add(f"i{k}.png", value=(k + offset) % 3, annotator=who)
        graders.append(runtime.run_id)
        flor.commit()
    read = flor.training_data(v, label="dr_grade")
    d = runtime.run_id
    flor.commit()
    time.sleep(0.01)
    for k in range(6):  # a third grader, after D trained
        grade.add(f"i{k}.png", value=2, annotator="cy")
    late = runtime.run_id
    flor.commit()
    assert flor.feature("dr_grade").select("newest")["value"].tolist() == [2] * 6
    again = grade.select("newest", as_of=d)
    assert again["value"].tolist() == read["dr_grade"].tolist()
    assert grade.select("newest", as_of=v)["value"].tolist() == []  # released before labels
    replayed = flor.training_data(v, label="dr_grade", as_of=d)
    assert replayed.equals(read)
    up = flor.lineage(d)
    runs = set(up.loc[up["kind"] == "run", "ref"].astype(int))
    assert set(graders) <= runs and late not in runs
    after = flor.derived(late)  # the late grader's labels reached no earlier training
    assert d not in set(after.loc[after["kind"] == "run", "ref"].astype(int))
    before = flor.derived(graders[0])
    assert d in set(before.loc[before["kind"] == "run", "ref"].astype(int))
