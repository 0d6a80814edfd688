"""Versioned datasets against the real store: releases stay frozen and verifiable."""

from __future__ import annotations

import sqlite3

import pytest

import flordb as flor
from flordb.lifecycle.datasets import DatasetError, IntegrityError
from flordb.store.db import connect_reader, store_dir


def ids(frame) -> list[str]:
    return frame["record_id"].tolist()


def test_release_freezes_members_after_adds_and_removes(runtime, repo):
    for i in range(5):
        (repo / f"img{i}.png").write_bytes(bytes([i]) * 10)
    images = flor.dataset("images", record_type="file")
    assert images.add([f"img{i}.png" for i in range(4)]) == 4
    assert images.add("img0.png") == 0  # already a member
    v1 = images.release()
    assert (v1.label, v1.n_members) == ("1.0.0", 4)
    images.remove(["img1.png", "img2.png"])
    images.add("img4.png")
    v2 = images.release()
    assert v2.label == "1.1.0"
    again = flor.dataset("images").version("1.0.0")
    assert ids(again.members()) == ["img0.png", "img1.png", "img2.png", "img3.png"]
    assert again.content_hash == v1.content_hash
    again.verify(files=True)
    assert ids(images.members()) == ["img0.png", "img3.png", "img4.png"]
    assert ids(flor.dataset("images").version().members()) == ids(images.members())
    diff = images.diff("1.0.0", "1.1.0")
    assert diff.values.tolist() == [["img1.png", "file", "removed"],
                                    ["img2.png", "file", "removed"],
                                    ["img4.png", "file", "added"]]
    assert images.versions()["label"].tolist() == ["1.0.0", "1.1.0"]


def test_tampered_manifest_and_changed_files_are_detected(runtime, repo):
    (repo / "a.txt").write_text("a")
    (repo / "b.txt").write_text("b")
    ds = flor.dataset("docs")
    ds.add(["a.txt", "b.txt"])
    v = ds.release("2024.1")
    v.verify(files=True)
    (repo / "a.txt").write_text("changed")
    v.verify()  # the manifest itself is intact
    with pytest.raises(IntegrityError, match="1 file"):
        v.verify(files=True)
    conn = sqlite3.connect(store_dir(repo) / "flor.db")
    conn.execute("DELETE FROM version_members WHERE record_id = 'b.txt'")
    conn.commit()
    conn.close()
    with pytest.raises(IntegrityError, match="no longer match"):
        flor.dataset("docs").version("2024.1").verify()


def test_labels_nesting_and_errors(runtime):
    rows = flor.dataset("rows", record_type="row")
    rows.add(range(3))
    v = rows.release("1.0.0")
    with pytest.raises(DatasetError, match="already has a version"):
        rows.release("1.0.0")
    assert rows.release() == v  # nothing changed: the latest release
    rows.add(3)
    assert rows.release(bump="major").label == "2.0.0"
    rows.add(4)
    assert rows.release(bump="patch").label == "2.0.1"
    rows.add(5)
    with pytest.raises(DatasetError, match="bump"):
        rows.release(bump="huge")
    suite = flor.dataset("suite", record_type="row")
    suite.add(["extra"])
    suite.add(v)
    with pytest.raises(DatasetError, match="released version"):
        suite.add(rows)
    s1 = suite.release()
    assert ids(s1.members()) == ["extra", "rows@1.0.0"]
    deep = s1.members(recursive=True)
    assert ids(deep) == ["0", "1", "2", "extra"]
    assert deep.loc[deep["record_id"] == "0", "via"].item() == "suite@1.0.0 > rows@1.0.0"
    with pytest.raises(DatasetError, match="no released version"):
        rows.version("9.9.9")


def test_seeded_splits_are_disjoint_deterministic_and_recorded(runtime, repo):
    data = flor.dataset("samples", record_type="row")
    data.add([f"s{i:03d}" for i in range(100)])
    v = data.release()
    splits = v.split({"train": 0.7, "val": 0.1, "test": 0.2}, seed=7)
    members = {k: set(ids(s.members())) for k, s in splits.items()}
    assert [len(m) for m in members.values()] == [70, 10, 20]
    assert members["train"] | members["val"] | members["test"] == set(ids(v.members()))
    assert not (members["train"] & members["test"]) and not (members["train"] & members["val"])
    again = v.split({"train": 0.7, "val": 0.1, "test": 0.2}, seed=7)
    assert {k: s.content_hash for k, s in again.items()} == \
        {k: s.content_hash for k, s in splits.items()}
    with pytest.raises(DatasetError, match="another version or seed"):
        v.split({"train": 0.7, "val": 0.1, "test": 0.2}, seed=8)
    with pytest.raises(DatasetError, match="sum to 1"):
        v.split({"a": 0.5, "b": 0.6}, seed=0)
    table = flor.datasets().set_index("name")
    assert table.loc["samples:train", "split_seed"] == 7
    assert splits["train"].ref == "samples:train@1.0.0"


def test_reading_a_version_records_it_as_a_run_input(runtime, repo):
    data = flor.dataset("tiny", record_type="row")
    data.add(["x", "y"])
    v = data.release()
    assert ids(v.read()) == ["x", "y"]
    run = runtime.run_id
    flor.commit()
    conn = connect_reader(repo)
    assert conn.execute("SELECT kind, ref, checksum FROM run_io WHERE run_id = ? AND"
                        " direction = 'input'", (run,)).fetchall() == \
        [("dataset", "tiny@1.0.0", v.content_hash)]
    conn.close()


def lab(n_subjects: int = 10, per: int = 6, start: int = 0):
    """Images of subjects, with a subject feature and a grade to stratify by."""
    subject = flor.feature("subject", record_type="image", columns={"value": str})
    grade = flor.feature("grade", record_type="image", columns={"value": str})
    images = []
    for s in range(start, start + n_subjects):
        for k in range(per):
            rid = f"s{s:02d}/img{k}.png"
            subject.add(rid, value=f"s{s:02d}")
            grade.add(rid, value="sick" if s % 3 == 0 else "healthy")
            images.append(rid)
    return images


def test_grouped_split_keeps_every_subject_on_one_side(runtime):
    images = flor.dataset("retina", record_type="image")
    images.add(lab())
    v1 = images.release()
    splits = v1.split({"train": 0.7, "test": 0.3}, seed=3, group_by="subject")
    side = {rid: name for name, v in splits.items() for rid in ids(v.members())}
    assert len(side) == 60
    by_subject: dict[str, set] = {}
    for rid, name in side.items():
        by_subject.setdefault(rid.split("/")[0], set()).add(name)
    assert all(len(sides) == 1 for sides in by_subject.values())  # no leakage
    assert sum(1 for s in side.values() if s == "test") == 18  # 3 of 10 subjects
    stratified = v1.split({"a": 0.5, "b": 0.5}, seed=1, stratify_by="grade")
    sick = {name: sum(1 for rid in ids(v.members()) if int(rid[1:3]) % 3 == 0)
            for name, v in stratified.items()}
    assert sick == {"a": 12, "b": 12}  # 24 sick images, spread in proportion


def test_a_later_release_reuses_the_split_names_and_moves_nobody(runtime):
    images = flor.dataset("retina2", record_type="image")
    images.add(lab(10))
    v1 = images.release()
    first = v1.split({"train": 0.7, "test": 0.3}, seed=3, group_by="subject")
    was_test = set(ids(first["test"].members()))
    images.add(lab(5, start=10))  # five more subjects
    images.remove([r for r in ids(images.members()) if r.startswith("s01/")])  # one withdrawn
    v2 = images.release()
    second = v2.split({"train": 0.7, "test": 0.3}, seed=3, group_by="subject")
    assert second["test"].ref == "retina2:test@1.1.0"
    now_test, now_train = set(ids(second["test"].members())), set(ids(second["train"].members()))
    assert was_test - {r for r in was_test if r.startswith("s01/")} <= now_test
    assert not (was_test & now_train)
    assert now_test | now_train == set(ids(v2.members()))
    assert {r.split("/")[0] for r in now_test}.isdisjoint({r.split("/")[0] for r in now_train})
    assert second["test"].content_hash == v2.split(
        {"train": 0.7, "test": 0.3}, seed=3, group_by="subject")["test"].content_hash
    assert first["test"].members()["record_id"].tolist() == sorted(was_test)  # v1's kept
    lineage = flor.lineage("retina2:test@1.1.0")
    assert "retina2@1.1.0" in set(lineage["ref"])
    with pytest.raises(DatasetError, match="another version or seed"):
        v2.split({"train": 0.7, "test": 0.3}, seed=4, group_by="subject")
