"""Post-hoc plots of any logged (or back-filled) name: one line per run over a loop.

    fig = flor.plot("loss")                       # over the innermost loop, steps flattened
    fig = flor.plot("acc", x="epoch", by=["lr"])  # label runs by lr
    fig.savefig("acc.png")                        # or: flordb plot acc -o acc.png

Runs are labelled by the ``flor.arg`` values that differ between them (or by ``by``). When
``x`` is an inner loop, its iterations are numbered across the enclosing loops (step 1..N over
all epochs); when it is an outer loop and the name was logged in an inner one, each point is
the mean over the inner iterations. A name logged outside loops gets one bar per run.
Replayed values are drawn like recorded ones: they are the run's values. A line with more than
:data:`MAX_POINTS` points is drawn every k-th point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from flordb.errors import PlotError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

#: Loop columns of ``flor.dataframe`` end with this when they hold the element values.
_VALUE = "_value"
_IDENTITY = ("projid", "tstamp", "filename")
#: Points drawn per line at most; a longer series is drawn every k-th point.
MAX_POINTS = 5000


def plot(frame: pd.DataFrame, args: pd.DataFrame, name: str, x: str | None = None,
         by: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """The figure of ``name`` from ``frame`` (``flor.dataframe(name)``); ``args`` has one row
    per run (``tstamp`` and its ``flor.arg`` values) for the labels."""
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure

    values = pd.to_numeric(frame[name], errors="coerce") if name in frame else None
    if values is None or values.notna().sum() == 0:
        raise PlotError(f"no numeric value of {name!r} to plot")
    frame = frame.assign(**{name: values}).dropna(subset=[name])
    loops = [c for c in frame.columns
             if c not in (*_IDENTITY, name) and not c.endswith(_VALUE)
             and frame[c].notna().any()]
    if x is not None and x not in loops:
        raise PlotError(f"{name!r} was not logged inside a loop named {x!r}"
                        + (f"; its loops: {', '.join(loops)}" if loops else ""))
    labels = run_labels(args, list(frame["tstamp"].unique()), by)
    fig = Figure(figsize=(10, 5.5), layout="constrained")
    ax = fig.add_subplot()
    colors = _colors(len(labels))
    if not loops:
        last = frame.groupby("tstamp", sort=False)[name].last()
        ax.bar(range(len(last)), last.to_numpy(), color=colors[:len(last)])
        ax.set_xticks(range(len(last)), [labels[t] for t in last.index], rotation=30,
                      ha="right")
        ax.set_xlabel("run")
    else:
        x = x or loops[-1]
        inner = loops[loops.index(x) + 1:]
        for color, (tstamp, run) in zip(colors, frame.groupby("tstamp", sort=False)):
            run = run.dropna(subset=[x])
            if inner:  # the mean over the loops inside x
                points = run.groupby(loops[:loops.index(x) + 1], sort=True)[name].mean() \
                    .reset_index()
            else:
                points = run.sort_values(loops[:loops.index(x) + 1], kind="stable")
            xs = np.arange(1, len(points) + 1) if loops.index(x) > 0 \
                else points[x].to_numpy(dtype=float)
            ys = points[name].to_numpy(dtype=float)
            stride = -(-len(xs) // MAX_POINTS)  # long series are thinned for drawing
            ax.plot(xs[::stride], ys[::stride], label=labels[tstamp], color=color,
                    linewidth=1.6, marker="o" if len(points) <= 30 else None, markersize=3.5)
        outer = loops[:loops.index(x)]
        ax.set_xlabel(x + (f" (numbered across {', '.join(outer)} iterations)" if outer else "")
                      + (f", mean over {', '.join(inner)}" if inner else ""))
        ax.grid(alpha=0.3)
        ax.legend(title=", ".join(by) if by else "run", loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False,
                  ncol=1 if len(labels) <= 20 else 2)
    ax.set_ylabel(name)
    ax.set_title(title or f"{name}, {len(labels)} run{'s' if len(labels) != 1 else ''}")
    return fig


def run_labels(args: pd.DataFrame, tstamps: list[str],
               by: Sequence[str] | None = None) -> dict[str, str]:
    """A label per run: ``by`` values, else the args that differ between these runs, else
    the run's timestamp. Runs that would share a label get their timestamp added."""
    chosen = args.set_index("tstamp").reindex(tstamps)
    if by:
        missing = [b for b in by if b not in chosen.columns]
        if missing:
            raise PlotError(f"no flor.arg named {', '.join(missing)} in these runs")
        keys = list(by)
    else:
        keys = [c for c in chosen.columns
                if chosen[c].astype(str).nunique(dropna=False) > 1]
    labels = {}
    for tstamp, row in chosen.iterrows():
        text = ", ".join(f"{k}={_short(row[k])}" for k in keys)
        labels[tstamp] = text or _short_tstamp(tstamp)
    counts: dict[str, int] = {}
    for text in labels.values():
        counts[text] = counts.get(text, 0) + 1
    return {t: f"{text} ({t.replace('T', ' ')})" if counts[text] > 1 and keys else text
            for t, text in labels.items()}


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"]
    if n <= 20:
        return [cmap(i) for i in range(n)]
    return [cmap(i / max(1, n - 1)) for i in range(n)]


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _short_tstamp(tstamp: str) -> str:
    return tstamp.replace("T", " ")[:19]
