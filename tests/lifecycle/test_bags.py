"""Exporting a released version as a BagIt bag and importing it into a fresh project."""

from __future__ import annotations

import json

import pytest
from conftest import make_repo, run_script

EXPORT = '''
import flordb as flor
from pathlib import Path
Path("img").mkdir()
for k in range(4):
    Path(f"img/{k}.png").write_bytes(bytes([k]) * (100 + k))
scans = flor.dataset("scans", record_type="file")
scans.add([f"img/{k}.png" for k in range(4)])
grade = flor.feature("grade", record_type="file", columns={"value": int})
for k in range(4):
    grade.add(f"img/{k}.png", value=k % 2, annotator="ann")
flor.commit()
v = scans.release()
grade.add("img/0.png", value=5, annotator="late")  # after the release: not in the bag
bag = flor.export_bag(v, "../bag")
print(v.content_hash)
'''
IMPORT = '''
import flordb as flor
v = flor.import_bag("../bag")
print(v.ref, v.content_hash)
v.verify(files=True)
print(sorted(flor.feature("grade").select("newest")["value"].tolist()))
print(flor.import_bag("../bag").version_id == v.version_id)  # the same bag again
'''


def test_a_bag_imports_into_a_fresh_project_and_verifies(tmp_path):
    source = make_repo(tmp_path / "lab")
    digest = run_script(source, EXPORT, name="export.py").stdout.strip()
    bag = tmp_path / "bag"
    info = (bag / "bag-info.txt").read_text()
    assert f"External-Identifier: flordb:scans@1.0.0#sha256:{digest}" in info
    assert json.loads((bag / "data" / "version.json").read_text())["files"] == 4
    assert (bag / "data" / "labels.csv").read_text().count("img/") == 4
    assert "run" in (bag / "data" / "provenance.csv").read_text()
    elsewhere = make_repo(tmp_path / "collaborator")
    out = run_script(elsewhere, IMPORT, name="import.py").stdout.splitlines()
    assert out == [f"scans@1.0.0 {digest}", "[0, 0, 1, 1]", "True"]
    assert (elsewhere / "img" / "3.png").read_bytes() == bytes([3]) * 103


def test_a_tampered_bag_is_refused(tmp_path):
    source = make_repo(tmp_path / "lab")
    run_script(source, EXPORT, name="export.py")
    (tmp_path / "bag" / "data" / "files" / "img" / "2.png").write_bytes(b"poisoned")
    elsewhere = make_repo(tmp_path / "collaborator")
    proc = run_script(elsewhere, IMPORT, name="import.py", check=False)
    assert proc.returncode != 0 and "IntegrityError" in proc.stderr
    assert "does not verify" in proc.stderr and "2.png" in proc.stderr
    assert not (elsewhere / "img").exists()  # nothing copied from a bag that fails


@pytest.mark.parametrize("edit", ["manifest", "drop"])
def test_an_edited_manifest_or_a_missing_file_is_refused(tmp_path, edit):
    source = make_repo(tmp_path / "lab")
    run_script(source, EXPORT, name="export.py")
    data = tmp_path / "bag" / "data"
    if edit == "manifest":
        manifest = data / "manifest.csv"
        manifest.write_text(manifest.read_text().replace("img/3.png", "img/9.png"))
    else:
        (data / "files" / "img" / "0.png").unlink()
    proc = run_script(make_repo(tmp_path / "other"), IMPORT, name="import.py", check=False)
    assert proc.returncode != 0 and "IntegrityError" in proc.stderr
