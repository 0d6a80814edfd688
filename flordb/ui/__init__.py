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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from flordb.errors import FlorError
from flordb.store.db import connect_reader
from flordb.store.executions import recorded_args
from flordb.store.writer import dead_runs

#: Filter operators of the dataframe page.
OPS = ("==", "!=", ">", ">=", "<", "<=", "contains")
MAX_ROWS = 500
MAX_DIFF_BYTES = 200_000


#: The last lines of a run's output shown on its page (all of it: ``flor.query``).
OUTPUT_LINES = 500


def create_app(root: Path) -> Flask:
    """The web view of the store of the project at ``root``."""
    app = Flask(__name__)
    root = Path(root)

    @contextmanager
    def reader() -> Iterator[Any]:
        conn = connect_reader(root)
        try:
            yield conn
        finally:
            conn.close()

    @app.errorhandler(Exception)
    def failed(exc: Exception):
        if isinstance(exc, HTTPException):
            return Response(f"{exc.code} {exc.name}: {exc.description}", exc.code,
                            mimetype="text/plain")
        if isinstance(exc, FlorError):  # the store's fault, said plainly
            return Response(f"422 {exc}", 422, mimetype="text/plain")
        print(f"flordb ui: {type(exc).__name__}: {exc}", file=sys.stderr)
        return Response("500 internal error (details on the server's stderr)", 500,
                        mimetype="text/plain")

    @app.context_processor
    def project() -> dict:
        return {"project": root.name}

    @app.get("/")
    def runs():
        with reader() as conn:
            rows = conn.execute(
                "SELECT run_id, tstamp, filename, status, started, ended, n_values, snapshot"
                " FROM runs ORDER BY run_id").fetchall()
            args = recorded_args(conn)
            dead = dead_runs(conn)
        last_of: dict[str, int] = {}
        table = []
        for run_id, tstamp, filename, status, started, ended, n, snapshot in rows:
            table.append(dict(
                run_id=run_id, tstamp=tstamp, filename=filename,
                status="killed" if run_id in dead else status,
                seconds=f"{(ended or started) - started:.1f}", n_values=n, snapshot=snapshot,
                args=args.get(run_id, {}), previous=last_of.get(filename)))
            if snapshot:
                last_of[filename] = run_id
        return render_template("runs.html", title="Runs", runs=table)

    @app.before_request
    def ids_in_range():
        run_id = (request.view_args or {}).get("run_id")
        if isinstance(run_id, int) and not 0 < run_id < 2**63:
            abort(404, f"no run {run_id}")

    @app.get("/runs/<int:run_id>")
    def run(run_id: int):
        with reader() as conn:
            row = conn.execute(
                "SELECT run_id, projid, tstamp, filename, status, started, ended, argv, cwd,"
                " snapshot, git_head, git_dirty, host, env_hash FROM runs WHERE run_id = ?",
                (run_id,)).fetchone()
            if row is None:
                abort(404, f"no run {run_id}")
            run = dict(zip(("run_id", "projid", "tstamp", "filename", "status", "started",
                            "ended", "argv", "cwd", "snapshot", "git_head", "git_dirty",
                            "host", "env_hash"), row))
            if run_id in dead_runs(conn):
                run["status"] = "killed"
            env = conn.execute("SELECT env FROM environments WHERE env_hash = ?",
                               (run["env_hash"],)).fetchone()
            names = [dict(name=n, source=s, count=c) for n, s, c in conn.execute(
                "SELECT name, source, SUM(n) FROM (SELECT name, source, n FROM series"
                " WHERE run_id = ? UNION ALL SELECT name, source, 1 FROM records WHERE"
                " run_id = ? AND kind = 'log') WHERE source IN ('record', 'replay')"
                " GROUP BY name, source ORDER BY name", (run_id, run_id))]
            ios = [dict(direction=d, kind=k, ref=r, checksum=c) for d, k, r, c in conn.execute(
                "SELECT direction, kind, ref, checksum FROM run_io WHERE run_id = ?"
                " ORDER BY direction, kind, ref", (run_id,))]
            args = recorded_args(conn, run_id).get(run_id, {})
            output = [dict(stream=st, level=lv or "", logger=lg or "", text=tx)
                      for st, lv, lg, tx in reversed(conn.execute(
                          "SELECT stream, level, logger, text FROM run_output WHERE run_id = ?"
                          " ORDER BY seq DESC LIMIT ?", (run_id, OUTPUT_LINES)).fetchall())]
        environment = json.loads(env[0]) if env else {}
        details = [
            ("started", run["tstamp"]), ("script", run["filename"]),
            ("seconds", f"{(run['ended'] or run['started']) - run['started']:.2f}"),
            ("argv", " ".join(json.loads(run["argv"]))), ("working directory", run["cwd"]),
            ("args", ", ".join(f"{k}={v}" for k, v in args.items())),
            ("code snapshot", run["snapshot"] or "none"),
            ("git HEAD", f"{run['git_head'] or ''}{' (dirty)' if run['git_dirty'] else ''}"),
            ("host", run["host"]), ("python", environment.get("python", "")),
            ("platform", environment.get("platform", "")),
            ("accelerators", json.dumps(environment.get("accelerators", {}))),
        ]
        return render_template("run.html", title=f"Run {run_id}", run=run, details=details,
                               names=names, ios=ios, output=output,
                               output_lines=OUTPUT_LINES)

    @app.get("/runs/<int:run_id>/diff")
    def diff(run_id: int):
        with reader() as conn:
            rows = conn.execute("SELECT run_id, filename, snapshot FROM runs WHERE run_id <= ?"
                                " ORDER BY run_id", (run_id,)).fetchall()
        this = next((r for r in rows if r[0] == run_id), None)
        if this is None or not this[2]:
            abort(404, f"run {run_id} has no code snapshot")
        earlier = [r for r in rows if r[1] == this[1] and r[2] and r[0] < run_id]
        if not earlier:
            abort(404, f"run {run_id} has no earlier run of {this[1]} to compare with")
        text = _git_diff(root, earlier[-1][2], this[2])
        truncated = len(text) > MAX_DIFF_BYTES
        lines = [(_diff_class(line), line) for line in text[:MAX_DIFF_BYTES].splitlines()]
        return render_template("diff.html", title=f"Diff of run {run_id}", run_id=run_id,
                               previous=earlier[-1][0], filename=this[1], lines=lines,
                               truncated=truncated)

    @app.get("/metrics")
    def metrics():
        names, loops, runs_ = _metric_choices(root)
        name = request.args.get("name") or (names[0] if names else "")
        if name and name not in names:
            abort(400, f"no logged name {name!r}")
        x = request.args.get("x") or ""
        chosen = request.args.getlist("run") or [t for t, _ in runs_]
        query = [("name", name), ("x", x), *[("run", t) for t in chosen]]
        from urllib.parse import urlencode

        return render_template(
            "metrics.html", title="Metrics", names=names, name=name, loops=loops.get(name, []),
            x=x, runs=runs_, chosen=set(chosen), error=None,
            chart_url=url_for("chart") + "?" + urlencode(query))

    @app.get("/chart.png")
    def chart():
        from flordb import charts
        from flordb.store.frames import arguments, dataframe

        name = request.args.get("name", "")
        if not name:
            abort(400, "name is required")
        frame = dataframe(root, [name])
        chosen = request.args.getlist("run")
        if chosen:
            frame = frame[frame["tstamp"].isin(chosen)]
        try:
            fig = charts.plot(frame, arguments(root), name, request.args.get("x") or None)
        except charts.PlotError as exc:
            abort(400, str(exc))
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=100)
        return Response(out.getvalue(), mimetype="image/png")

    @app.get("/dataframe")
    def table():
        from flordb.store.frames import dataframe

        names = [n.strip() for n in request.args.get("names", "").split(",") if n.strip()]
        col, op, value = (request.args.get(k, "") for k in ("col", "op", "value"))
        if op and op not in OPS:
            abort(400, f"op must be one of {' '.join(OPS)}")
        frame = dataframe(root, names) if names or request.args else None
        html, total, shown, error = "", 0, None, None
        if frame is not None:
            if col:
                if col not in frame.columns:
                    abort(400, f"no column {col!r}")
                frame = frame[_mask(frame[col], op or "==", value)]
            total, shown = len(frame), min(len(frame), MAX_ROWS)
            html = frame.head(MAX_ROWS).to_html(index=False, escape=True, na_rep="",
                                                classes="frame", border=0)
        columns = list(frame.columns) if frame is not None else []
        return render_template("table.html", title="Dataframe", names=names, columns=columns,
                               col=col, op=op or "==", ops=OPS, value=value, html=html,
                               total=total, shown=shown, error=error)

    @app.get("/replays")
    def replays():
        with reader() as conn:
            out = []
            for replay_id, names, where in conn.execute(
                    "SELECT replay_id, names, where_expr FROM replays ORDER BY replay_id DESC"
                    ).fetchall():
                units = [dict(unit_id=u, run_id=r, start=a, stop=b, status=s,
                              seconds="" if t is None else f"{t:.1f}", error=e)
                         for u, r, a, b, s, t, e in conn.execute(
                             "SELECT unit_id, run_id, start, stop, status, seconds, error FROM"
                             " replay_units WHERE replay_id = ? ORDER BY unit_id", (replay_id,))]
                checks = [dict(run_id=r, name=n, compared=c, differing=d, max_abs_diff=m,
                               example=e)
                          for r, n, c, d, m, e in conn.execute(
                              "SELECT run_id, name, compared, differing, max_abs_diff, example"
                              " FROM replay_checks WHERE replay_id = ? ORDER BY run_id, name",
                              (replay_id,))]
                out.append(dict(replay_id=replay_id, names=", ".join(json.loads(names)),
                                where_expr=where, units=units, checks=checks))
        return render_template("replays.html", title="Replays", replays=out)

    @app.get("/datasets")
    def datasets():
        import pandas as pd

        with reader() as conn:
            listing = pd.read_sql_query(
                "SELECT d.name, d.record_type, d.description, (SELECT COUNT(*) FROM"
                " dataset_members m WHERE m.dataset_id = d.dataset_id) AS members"
                " FROM datasets d ORDER BY d.name", conn)
            versions = pd.read_sql_query(
                "SELECT d.name AS dataset, v.label, v.n_members, v.content_hash,"
                " v.released_by AS run_id, v.description FROM dataset_versions v JOIN datasets d"
                " ON d.dataset_id = v.dataset_id ORDER BY d.name, v.version_id", conn)
        sections = [("", _html(listing)), ("Released versions", _html(versions))] \
            if len(listing) else []
        return render_template("listing.html", title="Datasets", sections=sections,
                               empty="No dataset yet: flor.dataset(name).")

    @app.get("/features")
    def features():
        import pandas as pd

        with reader() as conn:
            listing = pd.read_sql_query(
                "SELECT f.name, f.record_type, f.columns, f.vocabulary, COUNT(v.record_id)"
                " AS values_, COUNT(DISTINCT v.record_id) AS records,"
                " COUNT(DISTINCT v.annotator) AS annotators FROM features f LEFT JOIN"
                " feature_values v ON v.feature_id = f.feature_id GROUP BY f.feature_id"
                " ORDER BY f.name", conn)
            recent = pd.read_sql_query(
                "SELECT f.name AS feature, v.record_id, v.value, v.annotator, v.workflow,"
                " v.run_id FROM feature_values v JOIN features f ON f.feature_id = v.feature_id"
                " ORDER BY v.created DESC LIMIT ?", conn, params=(MAX_ROWS,))
        sections = [("", _html(listing.rename(columns={"values_": "values"}))),
                    ("Latest values", _html(recent))] if len(listing) else []
        return render_template("listing.html", title="Features", sections=sections,
                               empty="No feature yet: flor.feature(name, columns=...).")

    return app


def serve(root: Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the view until interrupted."""
    from werkzeug.serving import run_simple

    connect_reader(root).close()  # a clear error now if there is no store
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"flordb ui: serving on {host}: anyone who can reach this machine can read the "
              "store (there is no authentication)", file=sys.stderr)
    print(f"flordb ui: http://{host}:{port}/ (read-only; Ctrl-C stops)", file=sys.stderr)
    run_simple(host, port, create_app(root), threaded=True)


def _metric_choices(root: Path) -> tuple[list[str], dict[str, list[str]], list[tuple[str, str]]]:
    """Numeric names logged in loops, the loops of each, and (tstamp, label) of every run."""
    from flordb.charts import run_labels
    from flordb.store.frames import arguments

    conn = connect_reader(root)
    try:
        names = [n for n, in conn.execute(
            "SELECT DISTINCT name FROM series WHERE source IN ('record', 'replay')"
            " ORDER BY name")]
        parent: dict[tuple[int, int], tuple[int, str, int]] = {
            (r, loop): (p, n, d) for r, loop, p, n, d in conn.execute(
                "SELECT run_id, loop_id, parent_id, name, depth FROM loops")}
        found: dict[str, dict[str, int]] = {}  # name -> loop -> depth
        for name, run, loop_id in conn.execute(
                "SELECT DISTINCT name, run_id, loop_id FROM series WHERE loop_id > 0"):
            key: tuple[int, int] | None = (run, loop_id)
            while key in parent:  # the loop holding the values and the loops around it
                up, loop, depth = parent[key]
                found.setdefault(name, {})[loop] = depth
                key = (run, up) if up else None
        loops = {n: sorted(ls, key=ls.__getitem__) for n, ls in found.items()}
        tstamps = [t for t, in conn.execute("SELECT tstamp FROM runs ORDER BY run_id")]
    finally:
        conn.close()
    labels = run_labels(arguments(root), tstamps)
    return names, loops, [(t, f"{labels[t]} · {t[:19]}") for t in tstamps]


def _mask(column, op: str, value: str):
    import pandas as pd

    if op == "contains":
        return column.astype(str).str.contains(value, regex=False, na=False)
    numeric = pd.to_numeric(pd.Series([value]), errors="coerce")[0]
    target: Any = numeric if pd.notna(numeric) and pd.api.types.is_numeric_dtype(column) \
        else value
    left = column if target is not value else column.astype(str)
    return {"==": left == target, "!=": left != target, ">": left > target,
            ">=": left >= target, "<": left < target, "<=": left <= target}[op].fillna(False)


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
