"""Lineage in both directions over runs, dataset versions, files and features.

    flor.lineage("models/a.pt")          # what produced it: runs, code, data, labels
    flor.derived("scans@1.0.0")          # everything that used it, transitively

Nodes are ``run:<run_id>``, ``dataset:<name@label>``, ``file:<path>@<sha256>``,
``feature:<name>`` and ``checkpoint:<run_id>:<loop_id>:<iter>``. Edges go from what was used
to what it made:

- a run released a dataset version, wrote a file (``flor.output``), a feature's values or a
  checkpoint;
- a version was read by a run (``DatasetVersion.read``), split into or nested in a version;
- a file (by path and checksum), a feature selection (``Feature.read``) or a checkpoint
  (``flor.load_checkpoint``) was read by a run.

Both calls return a frame with one row per node reached: its ``kind``, ``ref``, ``depth``
(edges away from the start), the ``via`` node it was reached from, and details (for runs:
script, status, code snapshot, environment).
"""

from __future__ import annotations

import numbers
from collections import defaultdict, deque
from typing import TYPE_CHECKING, Any

from flordb.errors import LineageError
from flordb.store import lifecycle as sql

if TYPE_CHECKING:
    import pandas

    from flordb.lifecycle.session import Session
    from flordb.store.db import Connection


def lineage(session: Session, target: object) -> pandas.DataFrame:
    """Everything ``target`` (a file path, ``name@label``, a DatasetVersion, a run id or a
    checkpoint row from :func:`flordb.best`) was produced from, transitively."""
    return _walk(session, target, upstream=True)


def derived(session: Session, target: object) -> pandas.DataFrame:
    """Everything produced from ``target``, transitively: the poisoned-data query."""
    return _walk(session, target, upstream=False)


def _walk(session: Session, target: object, upstream: bool) -> pandas.DataFrame:
    import pandas as pd

    with session.reading() as conn:
        edges = _edges(conn)
        starts = _resolve(session, target, edges)
        forward: dict[str, set[str]] = defaultdict(set)
        for a, b in edges:
            if upstream:
                forward[b].add(a)
            else:
                forward[a].add(b)
        seen = {s: (0, "") for s in starts}
        queue = deque(starts)
        while queue:
            node = queue.popleft()
            for nxt in sorted(forward[node]):
                if nxt not in seen:
                    seen[nxt] = (seen[node][0] + 1, node)
                    queue.append(nxt)
        runs = sql.run_details(conn)
    rows = []
    for node, (depth, via) in seen.items():
        kind, ref = node.split(":", 1)
        detail = runs.get(int(ref), (None,) * 5) if kind == "run" else (None,) * 5
        rows.append((depth, kind, ref, via, *detail))
    frame = pd.DataFrame(rows, columns=["depth", "kind", "ref", "via", "tstamp", "filename",
                                        "status", "snapshot", "env_hash"])
    return frame.sort_values(["depth", "kind", "ref"], kind="stable").reset_index(drop=True)


def _edges(conn: Connection) -> list[tuple[str, str]]:
    raw = sql.lineage_edges(conn)
    edges = [(f"run:{run}", f"dataset:{name}@{label}") for run, name, label in raw["released"]]
    edges += [(f"dataset:{parent}@{plabel}", f"dataset:{child}@{label}")
              for parent, plabel, child, label in raw["split"]]
    edges += [(f"dataset:{member}", f"dataset:{name}@{label}")
              for member, name, label in raw["nested"]]
    labellers: dict[str, list[tuple[int, float]]] = {}
    for name, run, first in raw["labelled"]:
        edges.append((f"run:{run}", f"feature:{name}"))
        labellers.setdefault(name, []).append((run, first))
    for run, direction, kind, ref, checksum, at in raw["io"]:
        if kind == "feature" and direction == "input":
            # What this run read of the feature: only the labels stored before it read them.
            read = _read_node(ref, run)
            edges.append((read, f"run:{run}"))
            edges += [(f"run:{labeller}", read) for labeller, first in labellers.get(ref, [])
                      if first <= at]
            continue
        node = _io_node(kind, ref, checksum)
        edges.append((node, f"run:{run}") if direction == "input" else (f"run:{run}", node))
    edges += [(f"run:{run}", f"checkpoint:{run}:{loop_id}:{it}")
              for run, loop_id, it in raw["checkpoints"]]
    return edges


def _read_node(feature: str, run: int) -> str:
    return f"feature:{feature} read by run {run}"


def _io_node(kind: str, ref: str, checksum: str | None) -> str:
    if kind == "file":
        return f"file:{ref}@{checksum or '?'}"
    return f"{kind}:{ref}"


def _resolve(session: Session, target: Any, edges: list[tuple[str, str]]) -> list[str]:
    """The start nodes for ``target``."""
    from pathlib import Path

    from flordb.lifecycle.datasets import DatasetVersion

    nodes = {n for e in edges for n in e}
    if isinstance(target, DatasetVersion):
        return [f"dataset:{target.ref}"]
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        return [f"run:{int(target)}"]  # numpy's too (a run_id from a frame)
    if hasattr(target, "columns") and "run_id" in target.columns:  # flor.best(...) rows
        return [f"run:{int(r)}" for r in target["run_id"]]
    if hasattr(target, "get") and target.get("run_id") is not None:  # one row of it
        return [f"run:{int(target['run_id'])}"]
    text = str(target)
    if f"dataset:{text}" in nodes:
        return [f"dataset:{text}"]
    if f"feature:{text}" in nodes:  # the feature, and every read of it
        return sorted(n for n in nodes if n == f"feature:{text}"
                      or n.startswith(f"feature:{text} read by run "))
    ref = session.resolve_project().relative(Path(text).resolve())
    files = sorted(n for n in nodes if n.startswith(f"file:{ref}@") or
                   n.startswith(f"file:{text}@"))
    if files:
        return files
    raise LineageError(f"nothing in the lineage records is named {text!r} (a file written with "
                      "flor.output, a dataset version name@label, a feature or a run id)")
