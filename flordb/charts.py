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

With many runs the figure stays readable: labels name only the args that tell runs apart (at
most :data:`LABEL_KEYS` of them), the legend lists :data:`LEGEND_ENTRIES` runs and says how
many more there are (with ``by``, one entry per group, runs of a group in one colour), text
is never parsed as TeX (a ``$`` in a name or an arg stays a ``$``), loop counters get integer
ticks, and the figure shows itself as a notebook cell's value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from flordb.errors import PlotError
from flordb.values import is_missing

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure

#: Loop columns of ``flor.dataframe`` end with this when they hold the element values.
_VALUE = "_value"
_IDENTITY = ("projid", "tstamp", "filename")
#: Points drawn per line at most; a longer series is drawn every k-th point.
MAX_POINTS = 5000
#: Runs named in the legend at most; the rest are counted in one last entry.
LEGEND_ENTRIES = 12
#: Args named in a run's label at most (those with the most distinct values).
LABEL_KEYS = 3


def plot(frame: pd.DataFrame, args: pd.DataFrame, name: str, x: str | None = None,
         by: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """The figure of ``name`` from ``frame`` (``flor.dataframe(name)``); ``args`` has one row
    per run (``tstamp`` and its ``flor.arg`` values) for the labels."""
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False}):  # "$" is text, not TeX
        return _plot(frame, args, name, x, by, title)


@dataclass
class Series:
    """What a chart draws of ``name``: per run (by tstamp) the points over the x loop, or
    (``x`` None: the name was logged outside loops) the run's last value."""

    name: str
    x: str | None
    x_label: str
    points: dict[str, tuple[np.ndarray, np.ndarray]]


def series(frame: pd.DataFrame, name: str, x: str | None = None) -> Series:
    """The points of ``name`` per run in ``frame`` (``flor.dataframe(name)``) over loop ``x``
    (default: the innermost; see the module docstring)."""
    import numpy as np
    import pandas as pd

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
    if not loops:
        last = frame.groupby("tstamp", sort=False)[name].last()
        return Series(name, None, "run", {t: (np.array([1.0]), np.array([float(v)]))
                                          for t, v in last.items()})
    x = x or loops[-1]
    inner = loops[loops.index(x) + 1:]
    points = {}
    for tstamp, run in frame.groupby("tstamp", sort=False):
        run = run.dropna(subset=[x])
        if inner:  # the mean over the loops inside x
            rows = run.groupby(loops[:loops.index(x) + 1], sort=True)[name].mean().reset_index()
        else:
            rows = run.sort_values(loops[:loops.index(x) + 1], kind="stable")
        xs = np.arange(1, len(rows) + 1, dtype=float) if loops.index(x) > 0 \
            else rows[x].to_numpy(dtype=float)
        points[str(tstamp)] = (xs, rows[name].to_numpy(dtype=float))
    outer = loops[:loops.index(x)]
    label = x + (f" (numbered across {', '.join(outer)} iterations)" if outer else "") \
        + (f", mean over {', '.join(inner)}" if inner else "")
    return Series(name, x, label, points)


def _plot(frame: pd.DataFrame, args: pd.DataFrame, name: str, x: str | None,
          by: Sequence[str] | None, title: str | None) -> Figure:
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    data = series(frame, name, x)
    tstamps = list(data.points)
    labels = run_labels(args, tstamps, by)
    group_of = run_labels(args, tstamps, by, unique=False) if by else labels
    groups = list(dict.fromkeys(group_of[t] for t in tstamps))
    palette = dict(zip(groups, _colors(len(groups))))
    colors = [palette[group_of[t]] for t in labels]
    fig = _figure_class()(figsize=(10, 5.5), layout="constrained")
    ax = fig.add_subplot()
    if data.x is None:
        ax.bar(range(len(tstamps)), [data.points[t][1][0] for t in tstamps],
               color=colors[:len(tstamps)])
        ax.set_xticks(range(len(tstamps)), [labels[t] for t in tstamps], rotation=30,
                      ha="right")
        ax.set_xlabel("run")
    else:
        for color, tstamp in zip(colors, tstamps):
            xs, ys = data.points[tstamp]
            stride = -(-len(xs) // MAX_POINTS)  # long series are thinned for drawing
            ax.plot(xs[::stride], ys[::stride], label=labels[tstamp], color=color,
                    linewidth=1.6 if len(labels) <= 20 else 0.8,
                    marker="o" if len(xs) <= 30 else None, markersize=3.5)
        ax.set_xlabel(data.x_label)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # loop counters are whole
        handles = [Line2D([], [], color=palette[g], linewidth=1.6) for g in groups]
        shown = groups[:LEGEND_ENTRIES]
        handles, names = handles[:LEGEND_ENTRIES], list(shown)
        if len(groups) > LEGEND_ENTRIES:
            handles.append(Line2D([], [], linestyle="none"))
            names.append(f"… and {len(groups) - LEGEND_ENTRIES} more "
                         f"{'groups' if by else 'runs'}")
        ax.legend(handles, names, title=", ".join(by) if by else "run", loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    ax.set_ylabel(name)
    ax.set_title(title or f"{name}, {len(labels)} run{'s' if len(labels) != 1 else ''}")
    return fig


def run_labels(args: pd.DataFrame, tstamps: list[str],
               by: Sequence[str] | None = None, unique: bool = True) -> dict[str, str]:
    """A label per run: ``by`` values, else the args that differ between these runs, else
    the run's timestamp. With ``unique``, runs that would share a label get their timestamp
    added."""
    chosen = args.set_index("tstamp").reindex(tstamps)
    if by:
        missing = [b for b in by if b not in chosen.columns]
        if missing:
            raise PlotError(f"no flor.arg named {', '.join(missing)} in these runs")
        keys = list(by)
    else:
        # Args that tell these runs apart: two values or more among the runs that have the
        # arg (an arg only some runs have, with one value, distinguishes nothing).
        distinct = {c: chosen[c].dropna().astype(str).nunique() for c in chosen.columns}
        keys = sorted((c for c, n in distinct.items() if n > 1),
                      key=lambda c: -distinct[c])[:LABEL_KEYS]
        keys = [c for c in chosen.columns if c in keys]  # in the order the script reads them
    labels = {}
    for tstamp, row in chosen.iterrows():
        text = ", ".join(f"{k}={_short(row[k])}" for k in keys if not is_missing(row[k]))
        labels[tstamp] = text or _short_tstamp(tstamp)
    if not unique:
        return labels
    counts = Counter(labels.values())
    return {t: f"{text} ({t.replace('T', ' ')})" if counts[text] > 1 and keys else text
            for t, text in labels.items()}


@cache
def _figure_class() -> type[Figure]:
    """:class:`~matplotlib.figure.Figure` that also shows itself as a notebook cell's value
    (matplotlib is imported only when a plot is made)."""
    from matplotlib.figure import Figure

    class NotebookFigure(Figure):
        """A figure that shows itself as a notebook cell's value (no ``%matplotlib``)."""

        def _repr_png_(self) -> bytes:
            import io

            out = io.BytesIO()
            self.savefig(out, format="png", dpi=100, bbox_inches="tight")
            return out.getvalue()

    return NotebookFigure


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


def thin(xs: np.ndarray, ys: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``2 * buckets`` points of a long series: the x range cut into
    ``buckets`` equal buckets, each kept as its minimum and its maximum (in x order), so a
    spike stays visible however long the series."""
    import numpy as np

    if len(xs) <= 2 * buckets:
        return xs, ys
    edges = np.linspace(xs[0], xs[-1], buckets + 1)
    which = np.clip(np.searchsorted(edges, xs, side="right") - 1, 0, buckets - 1)
    keep = np.zeros(len(xs), dtype=bool)
    starts = np.flatnonzero(np.r_[True, which[1:] != which[:-1]])
    for lo, hi in zip(starts, np.r_[starts[1:], len(xs)]):
        part = ys[lo:hi]
        if np.isnan(part).all():
            keep[lo] = True
            continue
        keep[lo + np.nanargmin(part)] = keep[lo + np.nanargmax(part)] = True
    return xs[keep], ys[keep]


def bands(data: Series, group_of: dict[str, str]) -> dict[str, dict[str, list[float]]]:
    """Per group of runs: at each x any of its runs has, the ``mean`` of their values, the
    ``lo``/``hi`` range and ``n`` runs counted."""
    import pandas as pd

    out: dict[str, dict[str, list[float]]] = {}
    parts: dict[str, list[pd.Series]] = {}
    for tstamp, (xs, ys) in data.points.items():
        parts.setdefault(group_of[tstamp], []).append(
            pd.Series(ys, index=xs).groupby(level=0).mean())  # one value per x and run
    for group, runs in parts.items():
        table = pd.concat(runs, axis=1).sort_index()
        out[group] = {"x": table.index.tolist(), "mean": table.mean(axis=1).tolist(),
                      "lo": table.min(axis=1).tolist(), "hi": table.max(axis=1).tolist(),
                      "n": table.notna().sum(axis=1).tolist()}
    return out
