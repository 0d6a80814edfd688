"""SQLite schema of the store and its migrations.

The schema version lives in ``PRAGMA user_version``. Each entry of ``MIGRATIONS`` takes the
store from version ``i`` to ``i + 1``; :func:`migrate` applies the missing ones inside one
``BEGIN IMMEDIATE`` transaction, so several processes opening a fresh store at once agree.

Data model (see ``docs/store.md``):

- ``runs``: one row per execution of a script (identity ``projid, tstamp, filename``).
- ``loops``: one row per *entry* into a ``flor.loop`` (a loop instance). ``loop_id`` is
  sequential per run; ``0`` stands for the run's top level and has no row. A logged value's
  context is ``(loop_id, iter)``: the instance and the 0-based iteration inside it.
- ``loop_values``: the element values of non-``range`` loops, in JSON chunks.
- ``series``: hot numeric values stored columnar, one row per flushed chunk of one name in one
  loop instance (``iters`` and ``vals`` are little-endian int64 / float64 arrays).
- ``records``: every other value (strings, None, bools, JSON containers, pickled objects) and
  every ``flor.arg``, one row each.
- ``series_rows``: the chunks of ``series`` unpacked into rows, filled lazily when SQL is asked
  for them (``flor.query``); ``logs`` is the view that unions both for SQL users.
- ``checkpoints`` (v2): one row per enrolled object (and one for the RNG states) of each
  checkpoint; ``iter`` is the outer-loop iteration whose *start* the state is. A checkpoint's
  rows are inserted in one transaction after its object files are durable.
- ``loop_timing`` (v2): per run and loop name, instances, iterations and seconds (and for
  outer loops with checkpointing, per-iteration mean and spread and checkpoint cost).
- ``replays`` and ``replay_units`` (v3): one row per ``flordb replay`` and per work unit (a
  run's range of outer iterations, with the directive its child process follows). Values a
  unit writes carry its ``unit`` and ``source = 'pending'`` until the unit completes; then, in
  one transaction, they become ``'replay'`` (new names, shown by ``flor.dataframe``) or
  ``'recheck'`` (re-executed recorded names, kept for the fidelity report only);
  ``replay_checks`` keeps that report: per replay, run and name, values compared and differing.
  A unit's ``checks`` (v8) holds what its child found comparing its live state with the
  recording's checkpoints (``replays.UnitChecks``). v8 also keys ``feature_values`` by
  annotator (one run, a labelling app or an import, holds several annotators' values of a
  record) and adds ``run_io.as_of``: the cut-off a run's read of a feature used.
- Lifecycle records (v4; ``docs/lifecycle.md``): ``datasets`` with their working members
  (``dataset_members``), released ``dataset_versions`` with frozen manifests
  (``version_members``) and content hashes; ``features`` (typed value columns, controlled
  vocabularies) and their ``feature_values``, each from one run with its annotator and
  workflow; ``run_io``, each run's inputs and outputs (dataset versions, files by checksum,
  feature selections); ``runs.env_vars`` (environment variables, credentials removed); the
  view ``executions``.
"""

from __future__ import annotations

import sqlite3

from flordb.errors import SchemaTooNewError

_V1 = """
CREATE TABLE environments (
    env_hash    TEXT PRIMARY KEY,
    env         TEXT NOT NULL,
    fingerprint TEXT
);
CREATE INDEX environments_fingerprint ON environments (fingerprint);
CREATE TABLE runs (
    run_id      INTEGER PRIMARY KEY,
    projid      TEXT NOT NULL,
    tstamp      TEXT NOT NULL,
    filename    TEXT NOT NULL,
    argv        TEXT NOT NULL,
    cwd         TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'killed')),
    started     REAL NOT NULL,
    ended       REAL,
    pid         INTEGER NOT NULL,
    pid_start   TEXT,
    host        TEXT NOT NULL,
    git_head    TEXT,
    git_dirty   INTEGER,
    snapshot    TEXT,
    env_hash    TEXT REFERENCES environments (env_hash),
    parent_run  INTEGER REFERENCES runs (run_id),
    n_values    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (projid, tstamp)
);
CREATE INDEX runs_status ON runs (status);
CREATE TABLE loops (
    run_id      INTEGER NOT NULL REFERENCES runs (run_id),
    loop_id     INTEGER NOT NULL,
    parent_id   INTEGER NOT NULL,
    parent_iter INTEGER NOT NULL,
    name        TEXT NOT NULL,
    depth       INTEGER NOT NULL,
    iterations  INTEGER,
    range_start INTEGER,
    range_step  INTEGER,
    PRIMARY KEY (run_id, loop_id)
) WITHOUT ROWID;
CREATE TABLE loop_values (
    run_id     INTEGER NOT NULL,
    loop_id    INTEGER NOT NULL,
    first_iter INTEGER NOT NULL,
    vals       TEXT NOT NULL,
    PRIMARY KEY (run_id, loop_id, first_iter)
) WITHOUT ROWID;
CREATE TABLE series (
    chunk_id INTEGER PRIMARY KEY,
    run_id   INTEGER NOT NULL REFERENCES runs (run_id),
    name     TEXT NOT NULL,
    loop_id  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    dtype    TEXT NOT NULL CHECK (dtype IN ('f8', 'i8')),
    n        INTEGER NOT NULL,
    iters    BLOB NOT NULL,
    vals     BLOB NOT NULL,
    source   TEXT NOT NULL DEFAULT 'record',
    unpacked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX series_name ON series (name, run_id);
CREATE INDEX series_unpacked ON series (unpacked) WHERE unpacked = 0;
CREATE TABLE records (
    run_id  INTEGER NOT NULL REFERENCES runs (run_id),
    loop_id INTEGER NOT NULL,
    iter    INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    name    TEXT NOT NULL,
    value,
    vtype   TEXT NOT NULL,
    repr    TEXT,
    kind    TEXT NOT NULL CHECK (kind IN ('log', 'arg')),
    source  TEXT NOT NULL DEFAULT 'record'
);
CREATE INDEX records_name ON records (name, run_id);
CREATE INDEX records_run ON records (run_id, loop_id, iter);
CREATE TABLE series_rows (
    chunk_id INTEGER NOT NULL REFERENCES series (chunk_id),
    iter     INTEGER NOT NULL,
    value    NOT NULL
);
CREATE INDEX series_rows_chunk ON series_rows (chunk_id);
CREATE VIEW logs AS
    SELECT r.run_id, r.loop_id, r.iter, r.seq, r.name, r.value, r.vtype, r.kind, r.source
    FROM records AS r
    UNION ALL
    SELECT s.run_id, s.loop_id, sr.iter, s.seq, s.name, sr.value,
           CASE s.dtype WHEN 'f8' THEN 'float' ELSE 'int' END, 'log', s.source
    FROM series AS s JOIN series_rows AS sr ON sr.chunk_id = s.chunk_id;
"""

_V2 = """
CREATE TABLE checkpoints (
    run_id    INTEGER NOT NULL REFERENCES runs (run_id),
    loop_id   INTEGER NOT NULL,
    iter      INTEGER NOT NULL,
    name      TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('torch', 'numpy', 'pickle', 'rng')),
    object    TEXT NOT NULL,
    bytes     INTEGER NOT NULL,
    capture_s REAL NOT NULL,
    write_s   REAL NOT NULL,
    PRIMARY KEY (run_id, loop_id, iter, name)
) WITHOUT ROWID;
CREATE TABLE loop_timing (
    run_id       INTEGER NOT NULL REFERENCES runs (run_id),
    name         TEXT NOT NULL,
    depth        INTEGER NOT NULL,
    instances    INTEGER NOT NULL,
    iterations   INTEGER NOT NULL,
    seconds      REAL NOT NULL,
    iter_mean_s  REAL,
    iter_std_s   REAL,
    checkpoints  INTEGER NOT NULL DEFAULT 0,
    checkpoint_s REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, name, depth)
) WITHOUT ROWID;
"""

_V3 = """
ALTER TABLE series ADD COLUMN unit INTEGER;
ALTER TABLE records ADD COLUMN unit INTEGER;
CREATE INDEX series_unit ON series (unit) WHERE unit IS NOT NULL;
CREATE INDEX records_unit ON records (unit) WHERE unit IS NOT NULL;
CREATE TABLE replays (
    replay_id  INTEGER PRIMARY KEY,
    started    REAL NOT NULL,
    names      TEXT NOT NULL,
    where_expr TEXT,
    pid        INTEGER NOT NULL,
    host       TEXT NOT NULL
);
CREATE TABLE replay_units (
    unit_id   INTEGER PRIMARY KEY,
    replay_id INTEGER NOT NULL REFERENCES replays (replay_id),
    run_id    INTEGER NOT NULL REFERENCES runs (run_id),
    names     TEXT NOT NULL,
    start     INTEGER NOT NULL,
    stop      INTEGER NOT NULL,
    directive TEXT NOT NULL,
    status    TEXT NOT NULL CHECK (status IN ('planned', 'running', 'done', 'failed')),
    seconds   REAL,
    error     TEXT
);
CREATE INDEX replay_units_run ON replay_units (run_id, status);
CREATE TABLE replay_checks (
    replay_id    INTEGER NOT NULL REFERENCES replays (replay_id),
    run_id       INTEGER NOT NULL REFERENCES runs (run_id),
    name         TEXT NOT NULL,
    compared     INTEGER NOT NULL,
    differing    INTEGER NOT NULL,
    max_abs_diff REAL,
    example      TEXT,
    PRIMARY KEY (replay_id, run_id, name)
) WITHOUT ROWID;
"""

_V4 = """
ALTER TABLE runs ADD COLUMN env_vars TEXT;
CREATE TABLE datasets (
    dataset_id     INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    record_type    TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    created        REAL NOT NULL,
    created_by     INTEGER REFERENCES runs (run_id),
    parent_version INTEGER REFERENCES dataset_versions (version_id),
    split_seed     INTEGER
);
CREATE TABLE dataset_members (
    dataset_id  INTEGER NOT NULL REFERENCES datasets (dataset_id),
    record_id   TEXT NOT NULL,
    record_type TEXT NOT NULL,
    added       REAL NOT NULL,
    added_by    INTEGER REFERENCES runs (run_id),
    PRIMARY KEY (dataset_id, record_id)
) WITHOUT ROWID;
CREATE TABLE dataset_versions (
    version_id   INTEGER PRIMARY KEY,
    dataset_id   INTEGER NOT NULL REFERENCES datasets (dataset_id),
    label        TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    n_members    INTEGER NOT NULL,
    released     REAL NOT NULL,
    released_by  INTEGER REFERENCES runs (run_id),
    description  TEXT NOT NULL DEFAULT '',
    UNIQUE (dataset_id, label)
);
CREATE TABLE version_members (
    version_id  INTEGER NOT NULL REFERENCES dataset_versions (version_id),
    record_id   TEXT NOT NULL,
    record_type TEXT NOT NULL,
    checksum    TEXT,
    PRIMARY KEY (version_id, record_id)
) WITHOUT ROWID;
CREATE TABLE features (
    feature_id  INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    record_type TEXT NOT NULL,
    columns     TEXT NOT NULL,
    vocabulary  TEXT NOT NULL DEFAULT '{}',
    created     REAL NOT NULL
);
CREATE TABLE feature_values (
    feature_id INTEGER NOT NULL REFERENCES features (feature_id),
    record_id  TEXT NOT NULL,
    run_id     INTEGER NOT NULL REFERENCES runs (run_id),
    annotator  TEXT NOT NULL,
    workflow   TEXT NOT NULL,
    created    REAL NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (feature_id, run_id, record_id)
) WITHOUT ROWID;
CREATE INDEX feature_values_record ON feature_values (feature_id, record_id);
CREATE TABLE run_io (
    run_id    INTEGER NOT NULL REFERENCES runs (run_id),
    direction TEXT NOT NULL CHECK (direction IN ('input', 'output')),
    kind      TEXT NOT NULL CHECK (kind IN ('dataset', 'file', 'feature', 'checkpoint')),
    ref       TEXT NOT NULL,
    checksum  TEXT,
    bytes     INTEGER,
    at        REAL NOT NULL,
    PRIMARY KEY (run_id, direction, kind, ref)
) WITHOUT ROWID;
CREATE INDEX run_io_ref ON run_io (kind, ref);
CREATE INDEX run_io_checksum ON run_io (checksum) WHERE checksum IS NOT NULL;
CREATE VIEW executions AS
    SELECT run_id, projid, tstamp, filename, status, started, ended,
           ended - started AS duration_s, argv, cwd, snapshot, git_head, git_dirty, env_hash,
           env_vars, host, pid, parent_run
    FROM runs;
"""

_V5 = """
CREATE TABLE run_output (
    run_id INTEGER NOT NULL REFERENCES runs (run_id),
    seq    INTEGER NOT NULL,
    at     REAL NOT NULL,
    stream TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr', 'logging')),
    level  TEXT,
    logger TEXT,
    text   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
"""

_V6 = """
ALTER TABLE dataset_versions ADD COLUMN parent_version INTEGER
    REFERENCES dataset_versions (version_id);
ALTER TABLE dataset_versions ADD COLUMN split_spec TEXT;
UPDATE dataset_versions SET parent_version = (SELECT d.parent_version FROM datasets d
    WHERE d.dataset_id = dataset_versions.dataset_id);
"""

_V7 = """
CREATE TABLE record_types (
    type_id    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    attributes TEXT NOT NULL,
    created    REAL NOT NULL,
    created_by INTEGER REFERENCES runs (run_id)
);
CREATE TABLE typed_records (
    type_id    INTEGER NOT NULL REFERENCES record_types (type_id),
    record_id  TEXT NOT NULL,
    attrs      TEXT NOT NULL,
    created    REAL NOT NULL,
    created_by INTEGER REFERENCES runs (run_id),
    PRIMARY KEY (type_id, record_id)
) WITHOUT ROWID;
ALTER TABLE datasets ADD COLUMN types TEXT NOT NULL DEFAULT '[]';
"""

_V8 = """
ALTER TABLE replay_units ADD COLUMN checks TEXT;
ALTER TABLE run_io ADD COLUMN as_of REAL;
CREATE TABLE feature_values_by_annotator (
    feature_id INTEGER NOT NULL REFERENCES features (feature_id),
    record_id  TEXT NOT NULL,
    run_id     INTEGER NOT NULL REFERENCES runs (run_id),
    annotator  TEXT NOT NULL,
    workflow   TEXT NOT NULL,
    created    REAL NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (feature_id, run_id, record_id, annotator)
) WITHOUT ROWID;
INSERT INTO feature_values_by_annotator (feature_id, record_id, run_id, annotator, workflow,
                                         created, value)
    SELECT feature_id, record_id, run_id, annotator, workflow, created, value
    FROM feature_values;
DROP TABLE feature_values;
ALTER TABLE feature_values_by_annotator RENAME TO feature_values;
CREATE INDEX feature_values_record ON feature_values (feature_id, record_id);
"""

# Global identities: a run, a dataset, a released version and a feature keep one id on every
# machine (the local integer ids are this store's only). New rows get a random UUID from the
# writer; rows of older stores get one here.
_V9 = """
ALTER TABLE runs ADD COLUMN uid TEXT;
UPDATE runs SET uid = lower(hex(randomblob(16))) WHERE uid IS NULL;
CREATE UNIQUE INDEX runs_uid ON runs (uid);
ALTER TABLE datasets ADD COLUMN uid TEXT;
UPDATE datasets SET uid = lower(hex(randomblob(16))) WHERE uid IS NULL;
CREATE UNIQUE INDEX datasets_uid ON datasets (uid);
ALTER TABLE dataset_versions ADD COLUMN uid TEXT;
UPDATE dataset_versions SET uid = lower(hex(randomblob(16))) WHERE uid IS NULL;
CREATE UNIQUE INDEX dataset_versions_uid ON dataset_versions (uid);
ALTER TABLE features ADD COLUMN uid TEXT;
UPDATE features SET uid = lower(hex(randomblob(16))) WHERE uid IS NULL;
CREATE UNIQUE INDEX features_uid ON features (uid);
"""

#: MIGRATIONS[i] takes the store from schema version i to i + 1.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9)

SCHEMA_VERSION = len(MIGRATIONS)


def check_version(conn: sqlite3.Connection) -> None:
    """For a store that cannot be migrated (read-only): its schema must be this flordb's."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(f"the store has schema version {version}, this flordb knows "
                                f"up to {SCHEMA_VERSION}: upgrade flordb")
    if version < SCHEMA_VERSION:
        raise SchemaTooNewError(f"the read-only store has schema version {version}: open it "
                                "once where it can be written to upgrade it")


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema of ``conn`` up to :data:`SCHEMA_VERSION` in one transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"the store has schema version {version}, this flordb knows up to "
                f"{SCHEMA_VERSION}: upgrade flordb"
            )
        for script in MIGRATIONS[version:]:
            for statement in _statements(script):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit early)."""
    out, current = [], []
    for line in script.splitlines(keepends=True):
        current.append(line)
        candidate = "".join(current)
        if sqlite3.complete_statement(candidate):
            out.append(candidate.strip())
            current = []
    return [s for s in out if s]
