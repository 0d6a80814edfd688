"""Typed records: attributes, references, membership checks, dataset types, grouping."""

from __future__ import annotations

import pytest

import flordb as flor
from flordb.errors import DatasetError


def lab():
    subject = flor.record_type("Subject", {"sex": str, "age": int})
    image = flor.record_type("Image", {"subject": flor.ref("Subject"), "eye": str})
    for s in range(6):
        subject.add(f"s{s}", sex="f" if s % 2 else "m", age=50 + s)
        for eye in ("left", "right"):
            image.add(f"img/s{s}-{eye}.png", subject=f"s{s}", eye=eye)
    return subject, image


def test_attributes_and_references_are_checked(runtime):
    subject, image = lab()
    table = image.records()
    assert list(table.columns) == ["record_id", "subject", "eye"] and len(table) == 12
    assert subject.records().set_index("record_id").at["s3", "age"] == 53
    with pytest.raises(DatasetError, match="no Subject record 's9'"):
        image.add("img/s9-left.png", subject="s9", eye="left")
    with pytest.raises(DatasetError, match="Subject.age takes int"):
        subject.add("s7", sex="m", age="old")
    with pytest.raises(DatasetError, match="no attribute"):
        subject.add("s7", height=180)
    with pytest.raises(DatasetError, match="refers to 'Patient'"):
        flor.record_type("Scan", {"patient": flor.ref("Patient")})
    with pytest.raises(DatasetError, match="has attributes"):
        flor.record_type("Subject", {"sex": str})
    assert flor.record_type("Subject") == subject  # looked up, not redeclared
    assert len(image.records()) == 12  # nothing of the rejected records was stored


def test_datasets_take_only_records_and_split_by_an_attribute(runtime):
    lab()
    images = flor.dataset("eyes", record_type="Image")
    with pytest.raises(DatasetError, match="'img/typo.png' is not a Image record"):
        images.add(["img/s0-left.png", "img/typo.png"])
    assert images.members().empty  # all or nothing
    images.add([f"img/s{s}-{eye}.png" for s in range(6) for eye in ("left", "right")])
    images.set_types("training", "curated")
    assert images.types() == ["curated", "training"]
    splits = images.release().split({"train": 0.5, "test": 0.5}, seed=2, group_by="subject")
    sides = {}
    for name, v in splits.items():
        for rid in v.members()["record_id"]:
            sides.setdefault(rid.split("-")[0], set()).add(name)
    assert all(len(s) == 1 for s in sides.values()) and len(sides) == 6
    assert flor.get_dataset("eyes:test").types() == ["test"]
