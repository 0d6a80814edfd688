"""The ``flordb`` command line: read the store from a shell."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flordb.errors import FlorError, UsageError
from flordb.store.db import DatabaseError

if TYPE_CHECKING:
    import pandas

EPILOG = """examples:
  flordb dataframe lr loss           one row per run and loop context
  flordb dataframe loss --csv > loss.csv
  flordb query "SELECT name, COUNT(*) FROM logs GROUP BY name"
  flordb runs                        the runs of this project, newest last
  flordb stat                        what the store holds
  flordb propagate train.py old_train.py --name grad_norm --diff
  flordb plot loss -o loss.png       one line per run; --x epoch, --by lr, --where "lr > 0.01"
  flordb ui                          browse runs, metrics and replays at http://127.0.0.1:8765
  flordb replay grad_norm --dry-run  show the plan and each version's patch
  flordb replay grad_norm --where "lr > 0.01" --workers 4 --yes
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flordb", description="Query the flordb store of the project in this directory.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    df = sub.add_parser("dataframe", help="logged values as a table",
                        description="Logged values: one row per run and loop context.")
    df.add_argument("names", nargs="*", metavar="NAME",
                    help="logged names, space- or comma-separated (none: one row per run "
                         "with its top-level values)")
    fmt = df.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    fmt.add_argument("--json", action="store_true", help="print JSON records, one per line")
    q = sub.add_parser("query", help="read-only SQL over the store",
                       description="Run read-only SQL (tables runs, loops, records, series; "
                                   "view logs).")
    q.add_argument("sql")
    q.add_argument("--csv", action="store_true", help="print CSV")
    pr = sub.add_parser(
        "propagate", help="carry flor.log statements into an old version of a script",
        description="Insert the flor.log statements of NEW_FILE selected by --name/--line "
                    "into OLD_FILE; print the patched old file (or a diff) and one status "
                    "line per statement on stderr. Exit 3 when a statement cannot be placed.")
    pr.add_argument("new_file")
    pr.add_argument("old_file")
    pr.add_argument("--name", action="append", default=[], help="logged name (repeatable)")
    pr.add_argument("--line", action="append", default=[], type=int,
                    help="line of the statement in NEW_FILE (repeatable)")
    pr.add_argument("--diff", action="store_true", help="print a unified diff instead")
    rp = sub.add_parser(
        "replay", help="back-fill flor.log statements into past runs",
        description="Carry the flor.log statements of NAME from today's scripts into the "
                    "code of every past run that lacks NAME, re-execute those versions and "
                    "add the values to the runs. Shows the plan and asks first.")
    rp.add_argument("names", nargs="+", metavar="NAME",
                    help="logged name, or SCRIPT@LINE of a flor.log statement (repeatable, "
                         "or comma-separated: a,b); a last argument that is an expression "
                         "(lr > 0.01) is the where clause, as FlorDB takes it")
    rp.add_argument("--where", help='filter runs by top-level values, e.g. "lr > 0.01"')
    rp.add_argument("--workers", type=int, help="parallel processes (default: all cores)")
    rp.add_argument("--dry-run", action="store_true",
                    help="show the plan and the patch of each version; run nothing")
    rp.add_argument("--yes", "-y", action="store_true",
                    help="do not ask for confirmation (else read from the terminal or stdin: "
                         "echo y | flordb replay ...)")
    rp.add_argument("--verify", choices=("args", "version", "run", "none"), default="args",
                    help="cross-check restored state against execution for one run per "
                         "version and distinct args (default), per version, every run, or "
                         "none; units that execute iterations are always checked against "
                         "the recording's checkpoints")
    pl = sub.add_parser("plot", help="plot a logged name, one line per run",
                        description="Plot NAME over a loop, one line per run, runs labelled by "
                                    "the flor.arg values that differ between them.")
    pl.add_argument("name", metavar="NAME")
    pl.add_argument("--x", help="loop on the x axis (default: the innermost)")
    pl.add_argument("--by", nargs="+", metavar="ARG", help="label runs by these args")
    pl.add_argument("--where", help='filter runs by top-level values, e.g. "lr > 0.01"')
    pl.add_argument("-o", "--output", help="PNG (or .svg/.pdf) to write (default: NAME.png)")
    ui = sub.add_parser("ui", help="serve a read-only web view of the store",
                        description="Serve runs, metrics, dataframes, replays, datasets and "
                                    "features on http://HOST:PORT (read-only).")
    ui.add_argument("--port", type=port, default=8765, help="1-65535 (default 8765)")
    ui.add_argument("--host", default="127.0.0.1",
                    help="interface to bind (default: this machine only)")
    sub.add_parser("runs", help="the runs of this project")
    sub.add_parser("stat", help="counts and sizes of the store")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flordb`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except FlorError as exc:  # bad input or a store it cannot use: one line
        print(f"flordb: error: {exc}", file=sys.stderr)
        return 2
    except DatabaseError as exc:  # the store is locked, damaged or unreadable
        print(f"flordb: error: {_first_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a missing file, a port already in use: the environment
        print(f"flordb: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flordb: interrupted", file=sys.stderr)
        return 130


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def _run(args: argparse.Namespace) -> int:
    import flordb

    if args.command == "dataframe":
        names = _split_names(args.names)
        if names:
            _check_names(names)
        frame = flordb.dataframe(*names)
        _print(frame, csv=args.csv, json=args.json)
    elif args.command == "query":
        _print(_query(args.sql), csv=args.csv)
    elif args.command == "runs":
        _print(_runs_frame())
    elif args.command == "stat":
        _stat()
    elif args.command == "propagate":
        return _propagate(args)
    elif args.command == "replay":
        return _replay(args)
    elif args.command == "plot":
        return _plot(args)
    elif args.command == "ui":
        from flordb.ui import serve

        serve(_root(), args.host, args.port)
    return 0


def _runs_frame() -> pandas.DataFrame:
    """``flordb runs``: a row per run, oldest first."""
    import pandas as pd

    from flordb.store.handle import Store

    with Store.open(_root()) as store:
        runs = store.runs()
    return pd.DataFrame(
        [(r.run_id, r.uid[:12], r.tstamp, r.filename, r.status, round(r.seconds, 3),
          r.n_values, (r.snapshot or "")[:10] or None, r.git_dirty) for r in runs],
        columns=["run_id", "uid", "tstamp", "filename", "status", "seconds", "n_values",
                 "snapshot", "dirty"])


def _plot(args: argparse.Namespace) -> int:
    import re

    import flordb
    from flordb.charts import PlotError
    from flordb.errors import WhereError

    output = args.output or re.sub(r"[^A-Za-z0-9_.-]", "_", args.name) + ".png"
    try:
        fig = flordb.plot(args.name, x=args.x, by=args.by, where=args.where)
    except (PlotError, WhereError) as exc:
        raise UsageError(str(exc)) from None
    fig.savefig(output, dpi=150, bbox_inches="tight")
    print(output)
    return 0


def _replay(args: argparse.Namespace) -> int:
    import difflib

    from flordb.hindsight.plan import Plan, PlanError
    from flordb.hindsight.replay import execute, make_plan

    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    root = _root()
    names, where = args.names, args.where
    if len(names) > 1 and _is_expression(names[-1]):  # FlorDB's `replay a,b "lr > 0.1"`
        if where is not None:
            raise UsageError(f"two where clauses: {names[-1]!r} and --where {where!r}")
        names, where = names[:-1], names[-1]
    try:
        plan: Plan = make_plan(root, _split_names(names), where, args.workers, args.verify)
    except PlanError as exc:
        raise UsageError(str(exc)) from None
    print(plan.render())
    if args.dry_run:
        for v in plan.versions:
            if v.source:
                label = f"{v.filename}@{v.blob[:10]}"
                sys.stdout.writelines(difflib.unified_diff(
                    v.original.splitlines(keepends=True), v.source.splitlines(keepends=True),
                    label, f"{label} (patched)"))
        return 0
    if not plan.units:
        print("nothing to replay")
        return 0
    if not args.yes:
        print("replay? [y/N] ", end="", flush=True)
        answer = sys.stdin.readline()  # a terminal, or a pipe: echo y | flordb replay ...
        if not answer:
            raise UsageError("not confirmed (no answer on stdin): pass --yes to replay "
                             "without asking")
        if answer.strip().lower() not in ("y", "yes"):
            return 1
    report = execute(root, plan)
    print(report.render())
    return 0 if report.ok else 1


def port(text: str) -> int:
    """A TCP port number, for argparse (which turns the error into one usage line)."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port value: {text!r} (1-65535)")
    return port


def _split_names(tokens: list[str]) -> list[str]:
    """Names given as ``a b`` or as FlorDB's ``a,b`` (a name with a comma in it cannot be
    asked for by the command line; ``flor.dataframe`` takes it)."""
    return [n.strip() for t in tokens for n in t.split(",") if n.strip()]


def _is_expression(token: str) -> bool:
    return any(op in token for op in ("<", ">", "=", " and ", " or ", " in "))


def _propagate(args: argparse.Namespace) -> int:
    import difflib
    from pathlib import Path

    from flordb.errors import ParseError
    from flordb.hindsight.cst_tree import decode_source, encode_source
    from flordb.hindsight.propagate import propagate

    if not args.name and not args.line:
        raise UsageError("say which statements to carry: --name NAME or --line N")
    old_bytes = Path(args.old_file).read_bytes()
    try:
        new = decode_source(Path(args.new_file).read_bytes(), args.new_file)
        old = decode_source(old_bytes, args.old_file)
        result = propagate(new, old, names=args.name, lines=args.line)
    except ParseError as exc:
        raise UsageError(str(exc)) from None
    if args.diff:
        sys.stdout.writelines(difflib.unified_diff(
            old.splitlines(keepends=True), result.source.splitlines(keepends=True),
            args.old_file, f"{args.old_file} (patched)"))
    else:  # the patched file, in the encoding the old one declares
        sys.stdout.flush()
        sys.stdout.buffer.write(encode_source(result.source, old_bytes))
        sys.stdout.buffer.flush()
    for placement in result.placements:
        print(placement.describe(), file=sys.stderr)
    return 0 if result.ok else 3


def _root() -> Path:
    """The project the command reads: the one around the working directory."""
    from flordb.project import locate

    return locate().root


def _query(sql: str) -> pandas.DataFrame:
    """Read-only SQL over the project's store, empty results included."""
    from flordb.store.sql import query

    return query(_root(), sql)


def _check_names(names: list[str]) -> None:
    from flordb.store.handle import Store

    with Store.open(_root()) as store:
        known = store.names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"no values logged under {', '.join(map(repr, unknown))}"
                         f" (known: {', '.join(sorted(known)[:20]) or 'none'})")


def _stat() -> None:
    from flordb.store.db import DB_FILENAME, store_dir
    from flordb.store.handle import Store

    root = _root()
    with Store.open(root) as store:
        runs, names, size = store.runs(), store.names(), store.size()
    counts = {"runs": len(runs), "running": sum(r.status == "running" for r in runs),
              "names": len(names), "values": sum(r.n_values for r in runs)}
    print(f"store:   {store_dir(root) / DB_FILENAME}")
    print(f"project: {root}")
    for key, value in counts.items():
        print(f"{key + ':':<8} {value:,}")
    print(f"size:    {size / 2**20:.1f} MB")


def _print(frame: pandas.DataFrame, csv: bool = False, json: bool = False) -> None:
    if csv:
        frame.to_csv(sys.stdout, index=False)
    elif json:
        frame.to_json(sys.stdout, orient="records", lines=True)
        sys.stdout.write("\n") if len(frame) else None
    elif frame.empty:
        print("(no rows)")
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", 200, "display.width", 200,
                               "display.max_columns", 50):
            print(frame.to_string(index=False))
