"""``flordb ui``: a read-only web view of the store (Flask, charts drawn by matplotlib).

Pages: runs (args, status, duration, code snapshot with a diff against the previous run of the
same script), one run, metric charts with run selection, the dataframe of chosen names with a
filter, replays with their fidelity checks, datasets and features. Everything is served from
the package (no CDN). The store is opened with read-only connections only and no SQL comes
from the browser: the dataframe filter is a column, an operator and a value. Templates escape
every string; a bad request gets a 4xx and an internal error a plain 500, never a traceback.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, render_template, request
from werkzeug.exceptions import HTTPException

from flordb.errors import FlorError
from flordb.store import browse
from flordb.store.frames import SUMMARIES
from flordb.store.handle import Run, Store
from flordb.values import is_missing

#: Filter operators of the dataframe page.
MAX_ROWS = 500
MAX_DIFF_BYTES = 200_000


#: The last lines of a run's output shown on its page (all of it: ``flor.query``).
OUTPUT_LINES = 500
#: Most runs a comparison shows side by side.
MAX_COMPARED = 12


ui = Blueprint("ui", __name__)


def create_app(root: Path) -> Flask:
    """The web view of the store of the project at ``root``."""
    app = Flask(__name__)
    app.config["PROJECT_ROOT"] = Path(root)
    app.register_blueprint(ui)
    app.register_error_handler(Exception, _failed)
    return app


def _root() -> Path:
    return Path(current_app.config["PROJECT_ROOT"])


def _store() -> Store:
    """The project's store, read-only, for one request (``with _store() as store:``)."""
    return Store.open(_root())


def _failed(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return Response(f"{exc.code} {exc.name}: {exc.description}", exc.code,
                        mimetype="text/plain")
    if isinstance(exc, FlorError):  # the store's fault, said plainly
        return Response(f"422 {exc}", 422, mimetype="text/plain")
    print(f"flordb ui: {type(exc).__name__}: {exc}", file=sys.stderr)
    return Response("500 internal error (details on the server's stderr)", 500,
                    mimetype="text/plain")


@ui.app_context_processor
def _project() -> dict:
    return {"project": _root().name}


@ui.before_app_request
def _ids_in_range() -> None:
    run_id = (request.view_args or {}).get("run_id")
    if isinstance(run_id, int) and not 0 < run_id < 2**63:
        abort(404, f"no run {run_id}")


@ui.get("/")
def runs() -> str:
    """Every run with its args, chosen metric columns (``?metrics=acc max, loss last``) and a
    search (``?q=lr > 0.01 and `acc max` >= 0.9``); sorting and selection in the browser."""
    metrics, q = _metric_columns(), request.args.get("q", "").strip()
    columns = [f"{n} {s}" for n, s in metrics]
    error, values = None, None
    with _store() as store:
        table, args = store.runs(), store.args()
        previous = _previous_snapshots(table)
        if metrics or q:
            try:
                chosen = store.runs_table(q or None, metrics).set_index("run_id")
                table = [r for r in table if r.run_id in chosen.index]
                values = chosen[columns]
            except FlorError as exc:
                error = str(exc)
    extra = {r.run_id: {"args": args.get(r.run_id, {}), "previous": previous.get(r.run_id),
                        "metrics": {} if values is None else {
                            c: _cell(values.at[r.run_id, c]) for c in columns}}
             for r in table}
    return render_template("runs.html", title="Runs", runs=table, extra=extra,
                           columns=columns, q=q, metrics=request.args.get("metrics", ""),
                           error=error)


def _previous_snapshots(runs: list[Run]) -> dict[int, int]:
    """``run_id ->`` the previous run of the same script that has a code snapshot (what its
    code diff is against)."""
    last_of: dict[str, int] = {}
    out: dict[int, int] = {}
    for r in runs:
        if r.filename in last_of:
            out[r.run_id] = last_of[r.filename]
        if r.snapshot:
            last_of[r.filename] = r.run_id
    return out


@ui.get("/runs.csv")
def runs_csv() -> Response:
    """The runs table as CSV: the same ``q`` and ``metrics`` as the page."""
    try:
        with _store() as store:
            frame = store.runs_table(request.args.get("q", "").strip() or None,
                                     _metric_columns())
            status = {r.run_id: r.status for r in store.runs()}
    except FlorError as exc:
        abort(400, str(exc))
    frame.insert(3, "status", frame["run_id"].map(status))  # as the table shows it
    return Response(frame.to_csv(index=False), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{_root().name}-runs.csv"'})


@ui.get("/compare")
def compare() -> str:
    """Chosen runs side by side: args (differences marked), last value of each numeric name,
    environment, and links to their code diffs."""
    ids = request.args.getlist("run", type=int)
    if not all(0 < i < 2**63 for i in ids):
        abort(404, "no such run")
    if not 2 <= len(ids) <= MAX_COMPARED:
        abort(400, f"choose 2 to {MAX_COMPARED} runs to compare (run=ID&run=ID...)")
    with _store() as store:
        chosen = store.runs(ids)
        if len(chosen) != len(set(ids)):
            abort(404, "no such run")
        by_id = {r.run_id: r for r in chosen}
        chosen = [by_id[i] for i in ids]
        details = [browse.run_details(store.conn, r, 0) for r in chosen]
        last = browse.last_values(store.conn, ids)
    names = sorted({k for d in details for k in d["args"]})
    args = [(n, [_cell(d["args"].get(n)) for d in details]) for n in names]
    metrics = [(n, [_cell(last.get((i, n))) for i in ids])
               for n in sorted({n for _, n in last})]
    env_keys = ("python", "platform")
    env = [(k, [str(d["environment"].get(k, "")) for d in details]) for k in env_keys]
    env.append(("environment hash", [(r.env_hash or "")[:12] for r in chosen]))
    return render_template("compare.html", title="Compare runs", runs=chosen, args=args,
                           metrics=metrics, env=env,
                           commands={r.run_id: _command(r, d["environment"])
                                     for r, d in zip(chosen, details)})


def _command(run: Run, environment: dict[str, Any]) -> str:
    """The shell command that runs ``run`` again: its interpreter, then its argv, quoted."""
    import shlex

    return shlex.join([str(environment.get("executable") or "python"), *run.argv])


def _metric_columns() -> list[tuple[str, str]]:
    """``?metrics=acc max, loss last`` as ``[("acc", "max"), ("loss", "last")]``."""
    out = []
    for part in request.args.get("metrics", "").split(","):
        words = part.split()
        if not words:
            continue
        name, summary = (" ".join(words[:-1]), words[-1]) if len(words) > 1 \
            and words[-1] in SUMMARIES else (" ".join(words), "last")
        out.append((name, summary))
    out = list(dict.fromkeys(out))  # a column asked for twice is one column
    if len(out) > MAX_METRIC_COLUMNS:
        abort(400, f"at most {MAX_METRIC_COLUMNS} metric columns")
    return out


#: Most metric columns one runs page computes.
MAX_METRIC_COLUMNS = 20


def _cell(value: Any) -> str:
    """A value as a table cell: numbers short, missing values empty."""
    if is_missing(value):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@ui.get("/runs/<int:run_id>")
def run(run_id: int) -> str:
    with _store() as store:
        found = store.runs([run_id])
        if not found:
            abort(404, f"no run {run_id}")
        r = found[0]
        info = browse.run_details(store.conn, r, OUTPUT_LINES)
    environment = info["environment"]
    details = [
        ("started", r.tstamp), ("script", r.filename), ("seconds", f"{r.seconds:.2f}"),
        ("argv", " ".join(r.argv)), ("working directory", r.cwd),
        ("args", ", ".join(f"{k}={v}" for k, v in info["args"].items())),
        ("code snapshot", r.snapshot or "none"),
        ("git HEAD", f"{r.git_head or ''}{' (dirty)' if r.git_dirty else ''}"),
        ("host", r.host), ("identity", r.uid), ("python", environment.get("python", "")),
        ("platform", environment.get("platform", "")),
        ("accelerators", json.dumps(environment.get("accelerators", {}))),
    ]
    return render_template("run.html", title=f"Run {run_id}", run=r, details=details,
                           names=info["names"], ios=info["io"], output=info["output"],
                           output_lines=OUTPUT_LINES)


@ui.get("/runs/<int:run_id>/diff")
def diff(run_id: int) -> str:
    """The code of a run against the previous run of its script (or ``?against=ID``)."""
    against = request.args.get("against", type=int)
    if against is not None and not 0 < against < 2**63:
        abort(404, f"no run {against}")
    with _store() as store:
        rows = browse.snapshots_up_to(store.conn, max(run_id, against or 0))
    this = next((r for r in rows if r[0] == run_id), None)
    if this is None or not this[2]:
        abort(404, f"run {run_id} has no code snapshot")
    if against is not None:
        earlier = [r for r in rows if r[0] == against and r[2]]
        if not earlier:
            abort(404, f"run {against} has no code snapshot")
    else:
        earlier = [r for r in rows if r[1] == this[1] and r[2] and r[0] < run_id]
        if not earlier:
            abort(404, f"run {run_id} has no earlier run of {this[1]} to compare with")
    previous = earlier[-1][2]
    assert previous is not None and this[2] is not None  # filtered above
    text = _git_diff(_root(), previous, this[2])
    truncated = len(text) > MAX_DIFF_BYTES
    lines = [(_diff_class(line), line) for line in text[:MAX_DIFF_BYTES].splitlines()]
    return render_template("diff.html", title=f"Diff of run {run_id}", run_id=run_id,
                           previous=earlier[-1][0], filename=this[1], lines=lines,
                           truncated=truncated)


@ui.get("/metrics")
def metrics() -> str:
    """Interactive charts (drawn in the browser by uPlot from :func:`series_json`)."""
    names, loops, runs_ = _metric_choices(_root())
    with _store() as store:
        args = store.arguments()
    choices = {"project": _root().name, "names": names, "loops": loops,
               "args": [c for c in args.columns if c not in ("run_id", "tstamp")],
               "runs": [{"run_id": r, "tstamp": t, "label": label} for r, t, label in runs_]}
    return render_template("metrics.html", title="Metrics", choices=choices)


#: Most x buckets a series is thinned to (each keeps its min and max point).
MAX_BUCKETS = 4000


@ui.post("/api/series")
def series_json() -> Response:
    """The points of a name for chosen runs, thinned to the chart's width, or their means and
    ranges per group of an arg. Read-only: a POST only so that any number of runs fits."""
    from flordb import charts

    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        abort(400, "a JSON body with the name to chart is required")
    name, x, group = body["name"], body.get("x") or None, body.get("group") or None
    if not all(v is None or isinstance(v, str) for v in (x, group)):
        abort(400, "x and group must each be a loop or arg name (a string)")
    runs = body.get("runs")
    buckets = body.get("buckets", 1000)
    if not isinstance(buckets, int) or not 10 <= buckets <= MAX_BUCKETS:
        abort(400, f"buckets must be an integer from 10 to {MAX_BUCKETS}")
    if runs is not None and not (isinstance(runs, list) and all(type(r) is int for r in runs)):
        abort(400, "runs must be a list of run ids")
    with _store() as store:
        frame = store.frame([name], runs)  # the chosen runs only
        args = store.arguments()
        replayed = browse.replayed(store.conn, name)
    if group is not None and group not in args.columns:
        abort(400, f"no flor.arg named {group!r}")
    try:
        data = charts.series(frame, name, x)
        labels = charts.run_labels(args, list(data.points))
    except charts.PlotError as exc:
        abort(400, str(exc))
    by_run = args.set_index("tstamp")
    run_id = dict(zip(frame["tstamp"].astype(str), frame["run_id"].tolist()))
    out_runs = []
    for tstamp, (xs, ys) in data.points.items():
        xs, ys = charts.thin(xs, ys, buckets)
        row = by_run.loc[tstamp] if tstamp in by_run.index else None
        out_runs.append({
            "run_id": run_id[tstamp], "tstamp": tstamp, "label": labels[tstamp],
            "replayed": tstamp in replayed,
            "args": {} if row is None else {k: _jsonable(v) for k, v in row.items()
                                             if k != "run_id" and not is_missing(v)},
            "x": _floats(xs), "y": _floats(ys)})
    groups = None
    if group is not None:
        group_of = {t: f"{group}={_jsonable(by_run.at[t, group])}" for t in data.points}
        groups = {g: {k: _floats(v) if k != "n" else v for k, v in band.items()}
                  for g, band in charts.bands(data, group_of).items()}
    return Response(json.dumps({"name": name, "x_label": data.x_label, "runs": out_runs,
                                "groups": groups}, allow_nan=False),
                    mimetype="application/json")


@ui.get("/scatter")
def scatter() -> str:
    """Each run as a point: an arg against a metric column, to see what a choice did."""
    names, _, _ = _metric_choices(_root())
    with _store() as store:
        args = [c for c in store.arguments().columns if c not in ("run_id", "tstamp")]
    choices = {"project": _root().name, "names": names, "args": args}
    return render_template("scatter.html", title="Args against metrics", choices=choices)


@ui.post("/api/scatter")
def scatter_json() -> Response:
    """``{"x": arg, "name": name, "summary": "max", "q": where}`` -> one point per run that
    has both; a text arg is placed by category (``categories`` lists them in order)."""
    import pandas as pd

    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str)
                                             for k in ("x", "name", "summary")):
        abort(400, "a JSON body with x (an arg), name and summary is required")
    if not isinstance(body.get("q") or "", str):
        abort(400, "q must be a search (a string)")
    column = f"{body['name']} {body['summary']}"
    try:
        with _store() as store:
            frame = store.runs_table((body.get("q") or "").strip() or None,
                                     [(body["name"], body["summary"])])
    except FlorError as exc:
        abort(400, str(exc))
    if body["x"] not in frame.columns:
        abort(400, f"no flor.arg named {body['x']!r}")
    frame = frame[frame[body["x"]].notna() & frame[column].notna()]
    xs = frame[body["x"]]
    categories = None
    if not pd.api.types.is_numeric_dtype(xs) or xs.dtype == bool:
        categories = sorted({str(v) for v in xs})
        xs = xs.astype(str).map({c: i for i, c in enumerate(categories)})
    points = [{"tstamp": t, "run_id": int(r), "x": float(x), "y": float(y)}
              for t, r, x, y in zip(frame["tstamp"], frame["run_id"], xs, frame[column])]
    return Response(json.dumps({"x": body["x"], "y": column, "categories": categories,
                                "points": points}, allow_nan=False),
                    mimetype="application/json")


def _floats(values: Any) -> list[float | None]:
    """Floats for JSON, NaN and infinities as null."""
    import math

    return [float(v) if math.isfinite(v) else None for v in values]


def _jsonable(value: Any) -> Any:
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value.item() if hasattr(value, "item") else value


@ui.get("/chart.png")
def chart() -> Response:
    from flordb import charts

    name = request.args.get("name", "")
    if not name:
        abort(400, "name is required")
    chosen = request.args.getlist("run")
    if not all(r.isdigit() and len(r) < 19 for r in chosen):
        abort(400, "run must name runs by their ids")
    with _store() as store:
        frame = store.frame([name], [int(r) for r in chosen] if chosen else None,
                            run_ids=False)
        args = store.arguments()
    try:
        fig = charts.plot(frame, args, name, request.args.get("x") or None)
    except charts.PlotError as exc:
        abort(400, str(exc))
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    return Response(out.getvalue(), mimetype="image/png")


@ui.get("/dataframe")
def table() -> str:
    from flordb.store.where import select

    names = [n.strip() for n in request.args.get("names", "").split(",") if n.strip()]
    q = request.args.get("q", "").strip()
    frame = None
    if names or request.args:
        with _store() as store:
            frame = store.frame(names, run_ids=False)
    html, total, shown, error = "", 0, None, None
    if frame is not None:
        if q:
            try:
                frame = select(frame, q)  # the runs search's grammar: one filter language
            except FlorError as exc:
                abort(400, str(exc))
        total, shown = len(frame), min(len(frame), MAX_ROWS)
        html = frame.head(MAX_ROWS).to_html(index=False, escape=True, na_rep="",
                                            classes="frame", border=0)
    columns = list(frame.columns) if frame is not None else []
    return render_template("table.html", title="Dataframe", names=names, columns=columns,
                           q=q, html=html,
                           total=total, shown=shown, error=error)


@ui.get("/replays")
def replays() -> str:
    with _store() as store:
        out = store.replays()
    return render_template("replays.html", title="Replays", replays=out)


@ui.get("/datasets")
def datasets() -> str:
    with _store() as store:
        listing, versions = browse.datasets(store.conn)
    sections = [("", _html(listing)), ("Released versions", _html(versions))] \
        if len(listing) else []
    return render_template("listing.html", title="Datasets", sections=sections,
                           empty="No dataset yet: flor.dataset(name).")


@ui.get("/features")
def features() -> str:
    with _store() as store:
        listing, recent = browse.features(store.conn, MAX_ROWS)
    sections = [("", _html(listing)), ("Latest values", _html(recent))] if len(listing) else []
    return render_template("listing.html", title="Features", sections=sections,
                           empty="No feature yet: flor.feature(name, columns=...).")


def serve(root: Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the view until interrupted."""
    from werkzeug.serving import run_simple

    Store.open(root).close()  # a clear error now if there is no store
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"flordb ui: serving on {host}: anyone who can reach this machine can read the "
              "store (there is no authentication)", file=sys.stderr)
    print(f"flordb ui: http://{host}:{port}/ (read-only; Ctrl-C stops)", file=sys.stderr)
    run_simple(host, port, create_app(root), threaded=True)


def _metric_choices(root: Path) -> tuple[list[str], dict[str, list[str]],
                                         list[tuple[int, str, str]]]:
    """Numeric names logged in loops, the loops of each, and (run id, tstamp, label) of every
    run."""
    from flordb.charts import run_labels

    with Store.open(root) as store:
        names, loops, runs = browse.metric_names(store.conn)
        args = store.arguments()
    labels = run_labels(args, [t for _, t in runs])
    return names, loops, [(r, t, f"{labels[t]} · {t[:19]}") for r, t in runs]


def _html(frame) -> str:
    return frame.to_html(index=False, escape=True, na_rep="", border=0)


def _git_diff(root: Path, old: str, new: str) -> str:
    import git

    from flordb.store.snapshot import commit_id

    return git.Repo(root).git.diff("--stat", "--patch", "--no-color", commit_id(old),
                                   commit_id(new), "--")


def _diff_class(line: str) -> str:
    if line.startswith("+") and not line.startswith("+++"):
        return "add"
    if line.startswith("-") and not line.startswith("---"):
        return "del"
    return "hunk" if line.startswith("@@") else ""
