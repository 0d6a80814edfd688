"""Features and labels against the real store: vocabularies, provenance, selectors."""

from __future__ import annotations

import pytest

import flordb as flor
from flordb.lifecycle.features import FeatureError

VOCAB = {"label": {"cat": ["kitty", "feline"], "dog": ["puppy"], "bird": []}}


def define():
    return flor.feature("animal", record_type="image",
                        columns={"label": str, "confidence": float}, vocabulary=VOCAB)


def test_vocabulary_types_and_columns_are_enforced(runtime):
    f = define()
    f.add("img1", label="kitty", confidence=1)  # synonym, int widened to float
    v = f.values()
    assert v[["record_id", "label", "confidence"]].values.tolist() == [["img1", "cat", 1.0]]
    with pytest.raises(FeatureError, match=r"'horse' is not in the vocabulary: cat \(kitty"):
        f.add("img2", label="horse", confidence=0.5)
    with pytest.raises(FeatureError, match="takes float, not str"):
        f.add("img2", label="dog", confidence="high")
    with pytest.raises(FeatureError, match="missing: \\['confidence'\\]"):
        f.add("img2", label="dog")
    with pytest.raises(FeatureError, match="unknown: \\['colour'\\]"):
        f.add("img2", label="dog", confidence=0.1, colour="brown")
    with pytest.raises(FeatureError, match="only str columns"):
        flor.feature("bad", columns={"n": int}, vocabulary={"n": {"1": []}})
    with pytest.raises(FeatureError, match="is defined on"):
        flor.feature("animal", record_type="image", columns={"label": str})
    assert define() == f  # the same definition again is fine
    assert len(f.values()) == 1  # nothing of the rejected values was stored


def test_one_value_per_run_and_record_many_annotators(runtime):
    f = define()
    f.add("img1", label="cat", confidence=0.6)          # model run 1
    f.add("img1", label="dog", confidence=0.7)          # same run: replaces
    first_run = runtime.run_id
    flor.commit()
    f.add("img1", label="dog", confidence=1.0, annotator="alice", workflow="review")
    flor.commit()
    f.add("img1", label="cat", confidence=1.0, annotator="bob", workflow="review")
    f.add("img2", label="bird", confidence=1.0, annotator="bob", workflow="review")
    flor.commit()
    values = f.values()
    assert len(values) == 4
    assert values.loc[values["run_id"] == first_run, "label"].tolist() == ["dog"]
    newest = f.select("newest")
    assert newest[["record_id", "label", "annotator"]].values.tolist() == [
        ["img1", "cat", "bob"], ["img2", "bird", "bob"]]
    alice = f.select(annotator="alice")
    assert alice[["record_id", "label"]].values.tolist() == [["img1", "dog"]]
    majority = f.select("majority")
    row = majority[majority["record_id"] == "img1"].iloc[0]
    assert (row["label"], row["votes"], row["voters"]) == ("dog", 2, 3)
    review = f.select("majority", workflow="review")  # 1 dog vs 1 cat: the newest wins
    assert review.loc[review["record_id"] == "img1", "label"].item() == "cat"
    with pytest.raises(FeatureError, match="choose one of"):
        f.select("mean")


def test_feature_values_carry_their_run(runtime, repo):
    f = flor.feature("score", columns={"value": float})
    f.add_many([{"record_id": r, "value": float(i)} for i, r in enumerate("abc")])
    run, tstamp = runtime.run_id, runtime.tstamp
    flor.commit()
    v = f.values()
    assert set(v["run_id"]) == {run} and set(v["tstamp"]) == {tstamp}
    assert f.select()["value"].tolist() == [0.0, 1.0, 2.0]


def test_a_vocabulary_grows_but_never_loses_a_meaning(runtime):
    f = define()
    f.add("img1", label="kitty", confidence=1.0)
    grown = {"label": {**VOCAB["label"], "dog": ["puppy", "pup"], "horse": ["pony"]}}
    g = flor.feature("animal", record_type="image",
                     columns={"label": str, "confidence": float}, vocabulary=grown)
    g.add("img2", label="pony", confidence=0.7)  # a new term through its synonym
    g.add("img3", label="pup", confidence=0.7)  # a new synonym of an old term
    assert g.values()["label"].tolist() == ["cat", "horse", "dog"]
    assert flor.feature("animal").vocabulary == grown  # stored for later processes
    for bad, why in (({"label": {"cat": ["kitty"], "dog": ["puppy"], "bird": []}},
                      "synonyms \\['feline'\\] of 'cat'"),
                     ({"label": {"cat": ["kitty", "feline"], "dog": ["puppy", "pup"],
                                 "horse": ["pony"]}}, "term 'bird' is missing"),
                     ({"label": {**grown["label"], "bird": ["pony"]}}, "'pony' would mean both")):
        with pytest.raises(FeatureError, match=why):
            flor.feature("animal", record_type="image",
                         columns={"label": str, "confidence": float}, vocabulary=bad)


def test_majority_counts_annotators_not_sessions(runtime):
    f = flor.feature("quality", record_type="image", columns={"value": str})
    for annotator, value in (("ann", "bad"), ("bob", "good"), ("cy", "good")):
        f.add("img1", value=value, annotator=annotator)
        flor.commit()
    for _ in range(3):  # ann labels again in three more sessions: still one vote
        f.add("img1", value="bad", annotator="ann")
        flor.commit()
    row = f.select("majority").iloc[0]
    assert (row["value"], row["votes"], row["voters"]) == ("good", 2, 3)
