"""Runs as executions: provenance, inputs and outputs, and no credential in the store."""

from __future__ import annotations

import json

from conftest import run_script

import flordb as flor
from flordb.store.redact import REDACTED, is_secret

SECRETS = {
    "MY_API_KEY": "sk-live-0123456789abcdef",
    "GITHUB_TOKEN": "ghp_secretsecretsecret42",
    "DB_PASSWORD": "hunter2-very-secret",
    "AWS_SECRET_ACCESS_KEY": "AKIAsecretaccesskey99",
    "hfToken": "hf_camelcase_secret_77",
}
URL = "postgres://admin:pg-pass-321@db.example.com/prod"

SCRIPT = '''
import numpy as np
import flordb as flor

key = flor.arg("api_key", "default-key-xyz-123")
lr = flor.arg("lr", 0.1)
data = flor.input("data.csv")
w = np.zeros(3)
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(3)):
        w += lr
        flor.log("loss", float(w.sum()))
np.save(flor.output("model.npy"), w)
'''


def test_executions_record_provenance_and_never_a_secret(repo, runtime):
    (repo / "data.csv").write_text("a,b\n1,2\n")
    env = {**SECRETS, "DATABASE_URL": URL, "FLORDB_EPSILON": "1e9", "HARMLESS_SETTING": "42"}
    run_script(repo, SCRIPT, "--token", "cli-token-555", "--password=cli-pw-666",
               "--kwargs", "api_key=kw-key-777", "lr=0.5", env=env)
    run_script(repo, SCRIPT, env=env)
    # Nothing secret anywhere in the store's files.
    blob = b"".join(p.read_bytes() for p in (repo / ".flor").rglob("*") if p.is_file())
    for secret in [*SECRETS.values(), "pg-pass-321", "cli-token-555", "cli-pw-666",
                   "kw-key-777", "default-key-xyz-123"]:
        assert secret.encode() not in blob, secret
    frame = flor.executions()
    assert frame["status"].tolist() == ["completed", "completed"]
    first = frame.iloc[0]
    assert first["duration_s"] > 0 and first["python"] and first["platform"]
    assert first["args"] == {"api_key": REDACTED, "lr": 0.5}
    assert first["argv"][1:] == ["--token", REDACTED, f"--password={REDACTED}", "--kwargs",
                                 f"api_key={REDACTED}", "lr=0.5"]  # the command, as typed
    assert (first["inputs"], first["outputs"], first["checkpoints"]) == (1, 1, 3)
    assert frame["env_hash"].nunique() == 1  # one environment record, shared
    assert frame["snapshot"].notna().all()
    env_vars = json.loads(flor.query("SELECT env_vars FROM runs WHERE run_id = 1")
                          ["env_vars"][0])
    assert env_vars["HARMLESS_SETTING"] == "42"
    assert env_vars["DATABASE_URL"] == f"postgres://admin:{REDACTED}@db.example.com/prod"
    assert all(v == REDACTED for k, v in env_vars.items() if is_secret(k))  # names only
    io = flor.query("SELECT direction, kind, ref, checksum IS NOT NULL AS hashed FROM run_io"
                    " WHERE run_id = 1 ORDER BY direction")
    assert io.values.tolist() == [["input", "file", "data.csv", 1],
                                  ["output", "file", "model.npy", 1]]
    environment = json.loads(flor.query("SELECT env FROM environments")["env"][0])
    assert {"python", "platform", "cpu", "cpu_count", "packages", "accelerators"} <= \
        set(environment)
    assert "numpy" in environment["packages"]
