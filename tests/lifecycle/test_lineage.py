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
    assert {"quality", str(labelling), "scans@2.0.0"} <= set(labelled["ref"])
    assert "scans@1.0.0" not in set(labelled["ref"])
    with pytest.raises(LookupError, match="nothing in the lineage"):
        flor.lineage("nope.npy")
