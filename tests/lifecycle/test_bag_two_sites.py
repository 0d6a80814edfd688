"""A release a collaborator can train on: a speech-pathology lab's year in one project, its
bag imported in a second project, and the same split, training data and majority labels at
both sites; as-of a run reads again what the run read; a tampered bag is refused by file name.
"""

from __future__ import annotations

import json
import shutil

import bagit
import pytest
from conftest import make_repo, run_script

LAB = '''
import json, time
from pathlib import Path
import numpy as np
import flordb as flor

speaker = flor.record_type("Speaker", {"sex": str})
recording = flor.record_type("Recording", {"speaker": flor.ref("Speaker"), "task": str})
severity = flor.feature("severity", record_type="Recording", columns={"score": int})
Path("audio").mkdir()
ids = []
for s in range(6):
    speaker.add(f"S{s}", sex="fm"[s % 2])
    for r in range(3):
        rid = f"audio/S{s}-{r}.wav"
        Path(rid).write_bytes(bytes([s, r]) * (50 + r))
        recording.add(rid, speaker=f"S{s}", task="read" if r else "spontaneous")
        ids.append(rid)
corpus = flor.dataset("corpus", record_type="Recording")
corpus.add(ids)
flor.commit()
for k, clinician in enumerate(["ana", "ben", "cho"]):   # three clinicians, one session each
    for i, rid in enumerate(ids):
        severity.add(rid, annotator=clinician, score=(i + k * (i % 2)) % 4)
    flor.commit()
v1 = corpus.release("1.0.0")
flor.commit()
time.sleep(0.05)
for rid in ids:                                          # a fourth clinician, after 1.0.0
    severity.add(rid, annotator="dee", score=3)
flor.commit()
split = v1.split({"train": 0.6, "test": 0.4}, seed=3, group_by="speaker")
flor.commit()
train = flor.training_data(split["train"], label="severity", how="majority", as_of=v1)
training_run = int(flor.executions()["run_id"].max())
flor.commit()
corpus.remove([r for r in ids if r.startswith("audio/S5")])  # S5 withdraws consent
v2 = corpus.release("1.1.0")
again = v1.split({"train": 0.6, "test": 0.4}, seed=3, group_by="speaker")
flor.export_bag(v1, "../bag")
run_ids = flor.executions()["run_id"]
as_of_run = severity.select("majority", as_of=run_ids[run_ids == training_run].iloc[0])
print(json.dumps({
    "train": sorted(split["train"].members()["record_id"]),
    "again": sorted(again["train"].members()["record_id"]) == sorted(
        split["train"].members()["record_id"]),
    "training": train.to_dict("list"),
    "as_of_run": dict(zip(as_of_run["record_id"], as_of_run["score"].tolist())),
    "majority": severity.select("majority", as_of=v1)[["record_id", "score"]].to_dict("list"),
    "now": dict(zip(*severity.select("majority")[["record_id", "score"]].to_dict("list")
                    .values())),
    "lineage": sorted(flor.lineage(np.int64(training_run))["ref"].astype(str)),
    "dee_run": int(severity.values().query("annotator == 'dee'")["run_id"].iloc[0]),
    "ratings": int(len(severity.values(as_of=v1))),
    "uid": v1.uid,
}))
'''

SITE2 = '''
import json
import flordb as flor
v = flor.import_bag("../bag")
again = flor.import_bag("../bag")
v.verify(files=True)
split = v.split({"train": 0.6, "test": 0.4}, seed=3, group_by="speaker")
severity = flor.feature("severity", record_type="Recording", columns={"score": int})
train = flor.training_data(split["train"], label="severity", how="majority", as_of=v)
print(json.dumps({
    "same_version": again.version_id == v.version_id,
    "uid": v.uid,
    "train": sorted(split["train"].members()["record_id"]),
    "training": train.to_dict("list"),
    "majority": severity.select("majority", as_of=v)[["record_id", "score"]].to_dict("list"),
    "ratings": int(len(severity.values(as_of=v))),
    "speakers": int(len(flor.record_type("Speaker").records())),
    "recordings": int(len(flor.record_type("Recording").records())),
}))
'''


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("two-sites")
    repo = make_repo(base / "lab")
    out = json.loads(run_script(repo, LAB, name="year.py").stdout.splitlines()[-1])
    return base, repo, out


def test_a_bag_carries_files_records_and_every_rating(lab):
    base, _, first = lab
    bag = base / "bag"
    bagit.Bag(str(bag)).validate()  # an independent BagIt validation
    meta = json.loads((bag / "data" / "version.json").read_text())
    assert meta["files"] == 18 and meta["n_members"] == 18
    assert meta["records"] == 18 + 6  # the recordings and the speakers they reference
    assert meta["labels"] == first["ratings"] == 54  # three clinicians, before dee
    manifest = (bag / "data" / "manifest.csv").read_text().splitlines()
    assert all(line.count(",") == 2 and not line.endswith(",") for line in manifest[1:])
    assert (bag / "data" / "files" / "audio" / "S2-1.wav").is_file()


def test_the_second_site_gets_the_same_split_training_data_and_majority(lab):
    base, _, first = lab
    site2 = make_repo(base / "site2")
    out = json.loads(run_script(site2, SITE2, name="train.py").stdout.splitlines()[-1])
    assert out["same_version"]
    assert out["uid"] == first["uid"] and len(first["uid"]) == 32  # one identity, both sites
    assert out["speakers"] == 6 and out["recordings"] == 18
    assert out["ratings"] == first["ratings"]
    assert out["train"] == first["train"]
    assert out["training"] == first["training"]
    assert out["majority"] == first["majority"]
    assert (site2 / "audio" / "S4-2.wav").read_bytes() == bytes([4, 2]) * 52


def test_as_of_a_run_reads_what_it_read_and_lineage_follows(lab):
    _, _, first = lab
    training = dict(zip(first["training"]["record_id"], first["training"]["severity"]))
    assert {r: first["as_of_run"][r] for r in training} == training
    assert any(first["now"][r] != v for r, v in training.items())  # later labels differ
    assert first["again"]  # the same split again, after the later release 1.1.0
    dee = f"{first['dee_run']}"
    assert dee not in first["lineage"]  # the later clinician did not feed that training


def test_a_declared_record_type_refuses_other_records(repo):
    code = '''
import flordb as flor
flor.record_type("Speaker", {"sex": str}).add("S0", sex="f")
flor.record_type("Recording", {"speaker": flor.ref("Speaker")}).add("r0", speaker="S0")
corpus = flor.dataset("corpus", record_type="Recording")
try:
    corpus.add(["S0"], record_type="Speaker")
except flor.errors.DatasetError as exc:
    print("refused:", exc)
print(len(corpus.members()))
'''
    out = run_script(repo, code).stdout.splitlines()
    assert out[0].startswith("refused: corpus is a dataset of Recording records")
    assert out[1] == "0"


@pytest.mark.parametrize("tamper,named", [
    ("edit", "data/files/audio/S1-0.wav (changed)"),
    ("missing", "data/files/audio/S1-0.wav (missing)"),
    ("extra", "data/files/audio/planted.wav (not in the manifest)"),
    ("manifest", "manifest-sha256.txt (changed)"),
])
def test_a_tampered_bag_is_refused_by_file_name_and_nothing_is_copied(lab, tmp_path, tamper,
                                                                         named):
    base, _, _ = lab
    bag = tmp_path / "bag"
    shutil.copytree(base / "bag", bag)
    target = bag / "data" / "files" / "audio" / "S1-0.wav"
    if tamper == "edit":
        target.write_bytes(b"edited")
    elif tamper == "missing":
        target.unlink()
    elif tamper == "extra":
        (target.parent / "planted.wav").write_bytes(b"x")
    else:
        manifest = bag / "manifest-sha256.txt"
        lines = manifest.read_text().splitlines()
        lines = [("0" * 64 + line[64:]) if "labels.csv" in line else line for line in lines]
        manifest.write_text("\n".join(lines) + "\n")
    site = make_repo(tmp_path / "site")
    proc = run_script(site, "import flordb as flor\nflor.import_bag('../bag')\n",
                      check=False)
    assert proc.returncode != 0 and "IntegrityError" in proc.stderr
    assert named in proc.stderr, proc.stderr
    assert not (site / "audio").exists()


HOLEY = '''
import flordb as flor
from pathlib import Path
Path("audio").mkdir()
for k in range(3):
    Path(f"audio/{k}.wav").write_bytes(bytes([k]) * 1000)
corpus = flor.dataset("corpus")
corpus.add([f"audio/{k}.wav" for k in range(3)])
v = corpus.release()
flor.export_bag(v, "../holey", fetch=Path("../shared").resolve().as_uri())
'''


def test_a_holey_bag_lists_large_files_in_fetch_txt_and_still_checks_them(tmp_path):
    """Files kept on shared storage: the bag names them in fetch.txt and hashes them in its
    manifest; an import finds them there and checks every byte."""
    lab = make_repo(tmp_path / "lab")
    shared = tmp_path / "shared" / "audio"
    shared.mkdir(parents=True)
    for k in range(3):
        (shared / f"{k}.wav").write_bytes(bytes([k]) * 1000)
    run_script(lab, HOLEY, name="export.py")
    bag = tmp_path / "holey"
    assert not (bag / "data" / "files").exists()
    assert (bag / "fetch.txt").read_text().count("\n") == 3
    assert "data/files/audio/1.wav" in (bag / "manifest-sha256.txt").read_text()
    holey = bagit.Bag(str(bag))
    holey.validate_fetch()
    assert sorted(holey.files_to_be_fetched()) == [f"data/files/audio/{k}.wav" for k in range(3)]
    assert holey.info["Payload-Oxum"].endswith(".9")  # 6 metadata files under data/ + 3 to fetch
    site = make_repo(tmp_path / "site")
    run_script(site, "import flordb as flor\nflor.import_bag('../holey').verify(files=True)\n")
    assert (site / "audio" / "2.wav").read_bytes() == bytes([2]) * 1000
    (shared / "1.wav").write_bytes(b"changed on the shared disk")
    other = make_repo(tmp_path / "other")
    proc = run_script(other, "import flordb as flor\nflor.import_bag('../holey')\n",
                      check=False)
    assert proc.returncode != 0 and "data/files/audio/1.wav (changed)" in proc.stderr
    assert not (other / "audio").exists()
