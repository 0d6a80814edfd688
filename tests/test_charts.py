"""Plots: the figure's data, not its pixels."""

from __future__ import annotations

import subprocess

import pytest
from conftest import run_script

import flordb as flor
from flordb.charts import PlotError

SWEEP = '''
import flordb as flor
lr = flor.arg("lr", 0.1)
seed = flor.arg("seed", 0)
for epoch in flor.loop("epoch", range(3)):
    for step in flor.loop("step", range(4)):
        flor.log("loss", lr * (10 * epoch + step) + seed)
    flor.log("acc", lr * epoch)
flor.log("final", lr * 100)
'''


@pytest.fixture
def sweep(repo, runtime):
    for lr in ("0.1", "0.2", "0.3"):
        run_script(repo, SWEEP, "--kwargs", f"lr={lr}")
    return repo


def lines(fig):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
            for line in fig.axes[0].get_lines()}


def test_one_line_per_run_over_steps_numbered_across_epochs(sweep):
    fig = flor.plot("loss")
    data = lines(fig)
    assert list(data) == ["lr=0.1", "lr=0.2", "lr=0.3"]  # seed is the same: not a label
    xs, ys = data["lr=0.2"]
    assert xs == list(range(1, 13))
    assert ys == pytest.approx([0.2 * (10 * e + s) for e in range(3) for s in range(4)])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "step (numbered across epoch iterations)"
    assert ax.get_ylabel() == "loss" and "3 runs" in ax.get_title()
    assert ax.get_legend() is not None


def test_outer_loop_averages_the_inner_one_and_filters(sweep):
    data = lines(flor.plot("loss", x="epoch", where="lr >= 0.2"))
    assert list(data) == ["lr=0.2", "lr=0.3"]
    xs, ys = data["lr=0.3"]
    assert xs == [1, 2, 3]  # epochs counted from 1, as in flor.dataframe
    assert ys == pytest.approx([0.3 * (10 * e + 1.5) for e in range(3)])
    data = lines(flor.plot("acc", by=["seed"]))  # the same seed: told apart by start time
    assert len(data) == 3 and all(label.startswith("seed=0 (20") for label in data)


def test_top_level_values_are_bars_and_errors_are_clear(sweep):
    fig = flor.plot("final")
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == pytest.approx([10.0, 20.0, 30.0])
    with pytest.raises(PlotError, match="no numeric value"):
        flor.plot("missing")
    with pytest.raises(PlotError, match="loops: epoch, step"):
        flor.plot("loss", x="batch")
    with pytest.raises(PlotError, match="no flor.arg named"):
        flor.plot("loss", by=["momentum"])


def test_twenty_runs_stay_readable(repo, runtime):
    for i in range(20):
        run_script(repo, SWEEP, "--kwargs", f"lr={0.01 * (i + 1):.2f}")
    fig = flor.plot("acc", x="epoch")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(legend) == 13 and legend[-1] == "… and 8 more runs"
    assert legend[0] == "lr=0.01"
    colors = {tuple(line.get_color()) if not isinstance(line.get_color(), str)
              else line.get_color() for line in fig.axes[0].get_lines()}
    assert len(colors) == 20


def synthetic(n_runs: int, epochs: int = 5) -> tuple:
    """``flor.dataframe("acc")``-shaped frame and the args of ``n_runs`` runs."""
    import pandas as pd

    rows, args = [], []
    for r in range(n_runs):
        tstamp = f"2026-01-01T00:00:{r // 60:02d}.{r:06d}"
        args.append(dict(tstamp=tstamp, lr=0.001 * (r % 5 + 1), seed=r, metric="acc",
                         note="$x$ & $y$" if r == 0 else None))
        rows += [dict(projid="p", tstamp=tstamp, filename="t.py", epoch=e + 1,
                      epoch_value=e, acc=r + e * 0.1) for e in range(epochs)]
    return pd.DataFrame(rows), pd.DataFrame(args)


def test_two_hundred_runs_keep_a_readable_figure(tmp_path):
    """The legend does not grow with the runs, labels name only the args that tell runs
    apart, a "$" is text, loop counters get whole ticks, the PNG keeps its size."""
    from flordb import charts

    frame, args = synthetic(200)
    fig = charts.plot(frame, args, "acc", x="epoch")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(legend) == charts.LEGEND_ENTRIES + 1 and legend[-1] == "… and 188 more runs"
    assert legend[0] == "lr=0.001, seed=0"  # metric (constant) and note (one run) left out
    ticks = fig.axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks)
    png = fig._repr_png_()  # what a notebook shows without %matplotlib
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    fig.savefig(tmp_path / "a.png", dpi=100, bbox_inches="tight")
    from matplotlib.image import imread

    height, width = imread(tmp_path / "a.png").shape[:2]
    assert width < 1300 and height < 700  # was 2963 x 2734 with a legend entry per run
    dollars = charts.plot(frame.rename(columns={"acc": "cost $"}), args.assign(
        lr=[f"${i}" for i in range(200)]), "cost $", x="epoch")
    dollars.savefig(tmp_path / "b.png")  # TeX parsing of "$" raised before
    assert dollars.axes[0].get_ylabel() == "cost $"


def test_grouped_runs_share_a_colour_and_a_legend_entry():
    from flordb import charts

    frame, args = synthetic(30)
    fig = charts.plot(frame, args, "acc", x="epoch", by=["lr"])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [f"lr={0.001 * k:.4g}" for k in range(1, 6)]
    colors = {str(line.get_color()) for line in fig.axes[0].get_lines()}
    assert len(colors) == 5


def test_cli_writes_the_png(sweep):
    proc = subprocess.run(["flordb", "plot", "loss", "--x", "epoch", "-o", "loss.png"],
                          cwd=sweep, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (sweep / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    proc = subprocess.run(["flordb", "plot", "loss", "--where", "nope >"], cwd=sweep,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "where 'nope >'" in proc.stderr


def test_long_series_are_thinned_for_drawing(runtime):
    for step in flor.loop("step", range(12_000)):
        flor.log("loss", float(step))
    flor.commit()
    (line,) = flor.plot("loss").axes[0].get_lines()
    xs, ys = list(line.get_xdata()), list(line.get_ydata())
    assert len(xs) == 4000 and xs[:2] == [1, 4] and ys[:2] == [0.0, 3.0]
