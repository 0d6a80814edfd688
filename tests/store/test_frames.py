"""``flor.dataframe`` shape, order and broadcasting."""

from __future__ import annotations

import pandas as pd
import pytest

import flordb as flor
from flordb.store.db import NotAProjectError


def test_columns_and_top_level_broadcast(runtime):
    for lr in (0.1, 0.2):
        runtime.kwargs["lr"] = str(lr)
        flor.arg("lr", 0.0)
        for e in flor.loop("epoch", range(2)):
            flor.log("loss", lr * (e + 1))
        flor.log("test_acc", lr * 4)
        flor.commit()
    df = flor.dataframe("lr", "loss")
    assert list(df.columns) == ["projid", "tstamp", "filename", "epoch", "epoch_value", "lr",
                                "loss"]
    assert df["lr"].tolist() == [0.1, 0.1, 0.2, 0.2]
    assert df["loss"].tolist() == pytest.approx([0.1, 0.2, 0.2, 0.4])
    assert df["tstamp"].is_monotonic_increasing and df["tstamp"].nunique() == 2
    assert df["projid"].unique().tolist() == ["proj"]
    top = flor.dataframe("test_acc", "lr")
    assert list(top.columns) == ["projid", "tstamp", "filename", "test_acc", "lr"]
    assert top["test_acc"].tolist() == pytest.approx([0.4, 0.8])


def test_no_names_is_one_row_per_run(runtime):
    flor.arg("batch", 32)
    flor.log("note", "first")
    for _ in flor.loop("e", range(3)):
        flor.log("inner", 1.0)
    flor.commit()
    flor.arg("batch", 64)
    flor.commit()
    df = flor.dataframe()
    assert list(df.columns) == ["projid", "tstamp", "filename", "batch", "note"]
    assert df["batch"].tolist() == [32, 64]
    assert df["note"].iloc[0] == "first" and pd.isna(df["note"].iloc[1])


def test_unknown_name_gives_empty_frame(runtime):
    flor.log("a", 1.0)
    df = flor.dataframe("missing")
    assert df.empty and "missing" in df.columns


def test_same_name_twice_in_one_context_gives_two_rows_in_order(runtime):
    for _ in flor.loop("e", range(2)):
        flor.log("v", 1.0)
        flor.log("v", 2.0)
        flor.log("note", "once")
    df = flor.dataframe("v", "note")
    assert df["v"].tolist() == [1.0, 2.0, 1.0, 2.0]
    assert df["e"].tolist() == [1, 1, 2, 2]
    assert df["note"].fillna("-").tolist() == ["once", "-", "once", "-"]  # k-th values share a row


def test_a_top_level_name_logged_twice_keeps_both_values(runtime):
    flor.log("phase", "warmup")
    for _ in flor.loop("e", range(2)):
        flor.log("v", 1.0)
    flor.log("phase", "done")
    df = flor.dataframe("v", "phase")
    assert sorted(df["phase"].dropna()) == ["done", "warmup"]
    assert df["v"].tolist()[:2] == [1.0, 1.0]


def test_values_flushed_in_many_chunks_come_back_in_order(runtime):
    n = 200_000  # several sealed chunks of one series
    for i in flor.loop("i", range(n)):
        flor.log("x", i)
    df = flor.dataframe("x")
    assert len(df) == n
    assert (df["x"].to_numpy() == df["i_value"].to_numpy()).all()
    assert (df["i"].to_numpy() == df["x"].to_numpy() + 1).all()


def test_reading_a_directory_without_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from flordb.runtime import RUNTIME

    RUNTIME.project = None
    with pytest.raises(NotAProjectError, match="no flordb store"):
        flor.dataframe("x")
    RUNTIME.project = None
