"""`campus-sync bench`: how fast the engine moves one object, against the two obvious baselines.

One run, one generated district table (`campus.personidentity`, N rows), five timed phases:
the engine's full load, an unchanged resync, a resync after 1 % of rows changed, a raw
`COPY ... TO STDOUT | COPY ... FROM STDIN` pipe (the ceiling: no staging, no merge) and Airflow's
`DbApiHook.insert_rows` as `GenericTransfer` uses it (what people would write otherwise). Both
baselines load an empty table with the state table's columns and primary key, in one transaction
for the pipe and `commit_every=1000` for insert_rows, exactly as those tools do by default.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from campus_sync import db, hierarchy
from campus_sync.engine import sync as engine
from campus_sync.engine import schema

OBJECT = "PersonIdentity"
DISTRICT_ID = "bench"
DISTRICT_CONN = "campus_bench_district"
STATE_CONN = "campus_bench_state"
COPY_TARGET = "bench_copy_target"
CHILD = "VaccineShot"  # a child of OBJECT: its first load stages, checks parents and fires FKs
CHILD_COPY_TARGET = "bench_child_copy_target"
INSERT_TARGET = "bench_insert_target"
INSERT_ROWS_MAX = 100_000  # insert_rows is ~row-at-a-time: beyond this, measure a prefix and scale

# Deterministic rows; every nullable column is NULL on some rows, so NULL comparison is exercised.
# (`%%` is modulo: the statement takes a parameter.)
GENERATE = """
INSERT INTO campus.personidentity
    (personid, stateid, lastname, firstname, middlename, gender, birthdate, raceethnicity)
SELECT i,
       CASE WHEN i %% 10 = 0 THEN NULL ELSE 'S' || lpad(i::text, 10, '0') END,
       'Last' || (i %% 5003),
       'First' || (i %% 997),
       CASE WHEN i %% 3 = 0 THEN NULL ELSE chr(65 + i %% 26) END,
       CASE WHEN i %% 50 = 0 THEN NULL WHEN i %% 2 = 0 THEN 'F' ELSE 'M' END,
       date '2004-07-01' + (i %% 6000),
       CASE WHEN i %% 7 = 0 THEN NULL ELSE (i %% 6 + 1)::text END
  FROM generate_series(1, %s) AS i
"""
GENERATE_CHILD = """
INSERT INTO campus.vaccineshot (shotid, personid, vaccine, shotdate)
SELECT i, i, 'V' || (i %% 20), date '2010-01-01' + (i %% 4000) FROM generate_series(1, %s) AS i
"""
CHANGE_ONE_PERCENT = ("UPDATE campus.personidentity SET lastname = lastname || '-changed'"
                      " WHERE personid % 100 = 0")
CHANGE_CHILD_ONE_PERCENT = ("UPDATE campus.vaccineshot SET vaccine = vaccine || '-changed'"
                            " WHERE shotid % 100 = 0")


def _rss_mb() -> float:
    """High-water RSS of this process (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall-clock seconds (what an operator waits for), and the result."""
    t0 = time.perf_counter()
    out = fn()
    return round(time.perf_counter() - t0, 3), out


def _settle(*dsns: str) -> None:
    """CHECKPOINT before a timed phase, so it does not pay for the previous phase's dirty pages.
    Best effort: needs superuser or pg_checkpoint on a configured server."""
    for dsn in dsns:
        with contextlib.suppress(psycopg.Error), psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")


def _vacuum(state_dsn: str, *tables: str) -> None:
    """VACUUM (ANALYZE) state tables, as autovacuum would after a load (see SETTLED)."""
    with psycopg.connect(state_dsn, autocommit=True) as conn:
        for name in tables:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier("state", name)))


def _columns(graph: hierarchy.Hierarchy, name: str = OBJECT) -> list[str]:
    return ["district_id"] + [c.lower() for c in graph.spec(name).column_names]


def _select_sql(cols: list[str], limit: int | None = None, table: str = "personidentity") -> sql.Composed:
    """The rows both baselines move: district_id plus the object's columns, as the engine writes."""
    body = sql.SQL("SELECT %s::text, {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in cols[1:]), sql.Identifier("campus", table))
    if limit is not None:
        body += sql.SQL(" ORDER BY {} LIMIT {}").format(sql.Identifier(cols[1]), sql.Literal(limit))
    return body


def prepare(graph: hierarchy.Hierarchy, rows: int, district_dsn: str, state_dsn: str) -> None:
    """Fresh district tables of `rows` rows each (persons, one vaccine shot per person); empty
    state tables and baseline targets."""
    with psycopg.connect(district_dsn) as conn:
        schema.ensure_district_schema(conn, graph, [OBJECT, CHILD])
        conn.execute("TRUNCATE campus.personidentity, campus.vaccineshot")
        conn.execute(GENERATE, (rows,))
        conn.execute(GENERATE_CHILD, (rows,))
        conn.commit()
        conn.execute("ANALYZE campus.personidentity, campus.vaccineshot")
    with psycopg.connect(state_dsn) as conn:
        schema.ensure_state_schema(conn, graph)
        # No autovacuum on the bench tables (state and baselines): a background VACUUM/ANALYZE
        # landing inside one timed phase and not another would skew the ratios.
        for name in ("personidentity", "vaccineshot"):
            conn.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = off)").format(
                sql.Identifier("state", name)))
        conn.execute("TRUNCATE state.personidentity CASCADE")
        # same columns, defaults, NOT NULLs and PK as the state table; no foreign keys
        for name, like in ((COPY_TARGET, "personidentity"), (INSERT_TARGET, "personidentity"),
                           (CHILD_COPY_TARGET, "vaccineshot")):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL) WITH (autovacuum_enabled = off)")
                         .format(sql.Identifier(name), sql.Identifier("state", like)))


def copy_pipe(cols: list[str], district_dsn: str, state_dsn: str, target: str = COPY_TARGET,
              table: str = "personidentity") -> int:
    """The ceiling: COPY out of the district straight into the target, chunk by chunk, one commit."""
    copy_in = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(target), sql.SQL(", ").join(sql.Identifier(c) for c in cols))
    with psycopg.connect(district_dsn) as src, psycopg.connect(state_dsn) as dst:
        query = psycopg.ClientCursor(src).mogrify(_select_sql(cols, table=table), (DISTRICT_ID,))
        with src.cursor().copy(sql.SQL("COPY ({}) TO STDOUT").format(sql.SQL(query))) as out, \
                dst.cursor().copy(copy_in) as into:
            for chunk in out:
                into.write(chunk)
        dst.commit()
        count = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(target))
        return dst.execute(count).fetchone()[0]


def _postgres_hook(state_dsn: str):
    """Airflow's PostgresHook without a stored Airflow connection: `get_conn` opens the DSN
    (any libpq URI, socket paths included) and an empty Connection supplies the default extras."""
    os.environ.setdefault("AIRFLOW_HOME", str(db.home() / "airflow"))  # never write ~/airflow
    from airflow.providers.postgres.hooks import postgres
    from airflow.sdk import Connection

    # Importing Airflow routes stdlib INFO logs to stdout; keep pgserver's exit chatter out of --json.
    logging.getLogger("pgserver").setLevel(logging.WARNING)

    class BenchHook(postgres.PostgresHook):
        def get_conn(self):
            if postgres.USE_PSYCOPG3:  # the driver the hook itself would pick
                self.conn = psycopg.connect(state_dsn)
                postgres.register_default_adapters(self.conn)
            else:
                import psycopg2

                self.conn = psycopg2.connect(state_dsn)
            return self.conn

    hook = BenchHook(postgres_conn_id=STATE_CONN)
    hook._connection = Connection(conn_id=STATE_CONN, conn_type="postgres")
    hook._log = logging.getLogger("campus_sync.bench.engine_load.insert_rows")  # else a log line per 1000 rows
    hook._log.setLevel(logging.WARNING)
    return hook


def insert_rows(cols: list[str], n: int, district_dsn: str, state_dsn: str) -> tuple[float, int]:
    """GenericTransfer's path: get_records (fetchall) then insert_rows(commit_every=1000)."""
    with psycopg.connect(district_dsn) as src:
        records = src.execute(_select_sql(cols, n), (DISTRICT_ID,)).fetchall()
    hook = _postgres_hook(state_dsn)
    _settle(district_dsn, state_dsn)
    seconds, _ = _timed(lambda: hook.insert_rows(INSERT_TARGET, records, target_fields=cols))
    return seconds, len(records)


# child_full_load: the first load of CHILD once its parents are at the state (staged: parent check)
ENGINE_PHASES = ("full_load", "unchanged_resync", "unchanged_resync_settled", "one_percent_changed",
                 "child_full_load", "child_one_percent_changed")
# A weekly resync finds its table as autovacuum left it days after the load: hint bits set,
# visibility map and statistics current. Autovacuum is off in the bench (a run landing in one
# phase would skew the ratios), so before these phases the bench runs what it would do:
# VACUUM (ANALYZE), untimed. `unchanged_resync` stays the first read right after the load
# (which also pays for setting every row's hint bits), as before.
SETTLED = {"unchanged_resync_settled": "personidentity", "one_percent_changed": "personidentity",
           "child_one_percent_changed": "vaccineshot"}
CHANGES = {"one_percent_changed": ("changed_rows", CHANGE_ONE_PERCENT),
           "child_one_percent_changed": ("child_changed_rows", CHANGE_CHILD_ONE_PERCENT)}
REPEATS = 3


def _engine_round(graph: hierarchy.Hierarchy, rows: int, cols: list[str], district_dsn: str,
                  state_dsn: str) -> dict[str, Any]:
    """One round on a freshly generated table: the three engine phases, then the COPY pipe."""
    out: dict[str, Any] = {}
    out["prepare_s"], _ = _timed(lambda: prepare(graph, rows, district_dsn, state_dsn))

    def sync(name: str) -> engine.SyncResult:
        return engine.sync_object(graph, name, district_id=DISTRICT_ID, source_dsn=district_dsn,
                                  state_dsn=state_dsn, scope=engine.Scope(end_year=2027))

    for phase in ENGINE_PHASES:
        if phase in CHANGES:
            key, change = CHANGES[phase]
            with psycopg.connect(district_dsn) as conn:
                out[key] = conn.execute(change).rowcount
        if phase in SETTLED:
            _vacuum(state_dsn, SETTLED[phase])
        _settle(district_dsn, state_dsn)
        out[f"{phase}_s"], res = _timed(lambda: sync(CHILD if phase.startswith("child_") else OBJECT))
        out[f"{phase}_counts"] = {k: getattr(res, k) for k in
                                  ("processed", "copied", "inserted", "updated", "deleted", "unchanged", "errors")}
    _settle(district_dsn, state_dsn)
    out["copy_pipe_s"], out["copy_pipe_rows"] = _timed(lambda: copy_pipe(cols, district_dsn, state_dsn))
    _settle(district_dsn, state_dsn)
    out["child_copy_pipe_s"], out["child_copy_pipe_rows"] = _timed(lambda: copy_pipe(
        _columns(graph, CHILD), district_dsn, state_dsn, CHILD_COPY_TARGET, "vaccineshot"))
    return out


def run(rows: int, insert_rows_max: int = INSERT_ROWS_MAX, repeats: int = REPEATS) -> dict[str, Any]:
    """`repeats` rounds on the same generated table; each figure is the median of its rounds.

    The machine is noisy: a median of rounds, each measuring every phase back to back, keeps one
    slow moment from deciding a ratio. Engine rounds run before insert_rows (which imports Airflow
    and fetches rows into memory), so the engine's peak RSS is measured on its own."""
    graph = hierarchy.load()
    district_dsn, state_dsn = db.dsn(DISTRICT_CONN, embedded=True), db.dsn(STATE_CONN, embedded=True)  # before Airflow is imported
    cols = _columns(graph)
    rss: dict[str, float] = {"baseline": _rss_mb()}
    rounds = []
    for _ in range(repeats):
        rounds.append(_engine_round(graph, rows, cols, district_dsn, state_dsn))
    rss["engine"] = _rss_mb()

    measured_n = min(rows, insert_rows_max)
    insert_samples = []
    for _ in range(repeats):
        with psycopg.connect(state_dsn) as conn:
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(INSERT_TARGET)))
        seconds, inserted = insert_rows(cols, measured_n, district_dsn, state_dsn)
        insert_samples.append(round(seconds * rows / max(measured_n, 1), 3))
    rss["insert_rows"] = _rss_mb()  # includes GenericTransfer's fetch of the rows

    timed = [f"{p}_s" for p in ENGINE_PHASES] + ["copy_pipe_s", "child_copy_pipe_s", "prepare_s"]
    out: dict[str, Any] = {"rows": rows, "object": OBJECT, "repeats": repeats}
    out.update({k: statistics.median(r[k] for r in rounds) for k in timed})
    out["insert_rows_s"] = statistics.median(insert_samples)
    out["samples"] = {k: [r[k] for r in rounds] for k in timed} | {"insert_rows_s": insert_samples}
    last = rounds[-1]  # the counts are the same every round (same generated rows)
    out.update({k: last[k] for k in last if k.endswith(("_counts", "_rows"))})
    out["insert_rows_rows"] = inserted
    out["insert_rows_extrapolated"] = measured_n < rows
    out["engine_peak_rss_mb"] = rss["engine"]
    out["peak_rss_mb"] = rss["insert_rows"]
    out["rss_mb"] = rss

    full = max(out["full_load_s"], 1e-9)
    out["ratios"] = {
        "full_load_speed_vs_copy_pipe": round(out["copy_pipe_s"] / full, 3),  # target >= 0.6
        "full_load_speed_vs_insert_rows": round(out["insert_rows_s"] / full, 2),  # target >= 4
        "unchanged_time_vs_full_load": round(out["unchanged_resync_s"] / full, 3),  # target <= 0.5
        "unchanged_settled_time_vs_full_load": round(out["unchanged_resync_settled_s"] / full, 3),
        "one_percent_changed_time_vs_full_load": round(out["one_percent_changed_s"] / full, 3),
        "child_full_load_speed_vs_copy_pipe": round(out["child_copy_pipe_s"] / max(out["child_full_load_s"], 1e-9), 3),
        "child_one_percent_changed_time_vs_child_full_load": round(
            out["child_one_percent_changed_s"] / max(out["child_full_load_s"], 1e-9), 3),
    }
    r = out["ratios"]

    def carried(phase: str, changed: str) -> bool:
        """Exact counts (every changed row updated, nothing else) and rows copied <= 3x changed."""
        c = out[f"{phase}_counts"]
        return ((c["updated"], c["inserted"], c["deleted"]) == (out[changed], 0, 0)
                and c["copied"] <= 3 * out[changed])

    out["targets_met"] = {
        "full_load_ge_0.6x_copy_pipe": r["full_load_speed_vs_copy_pipe"] >= 0.6,
        "full_load_ge_4x_insert_rows": r["full_load_speed_vs_insert_rows"] >= 4,
        "unchanged_le_0.5x_full_load": r["unchanged_time_vs_full_load"] <= 0.5,
        "unchanged_le_0.15x_full_load": r["unchanged_time_vs_full_load"] <= 0.15,
        "unchanged_settled_le_0.15x_full_load": r["unchanged_settled_time_vs_full_load"] <= 0.15,
        "child_full_load_ge_0.6x_copy_pipe": r["child_full_load_speed_vs_copy_pipe"] >= 0.6,
        "one_percent_changed_le_0.3x_full_load": r["one_percent_changed_time_vs_full_load"] <= 0.3,
        "child_one_percent_changed_le_0.3x_full_load": r["child_one_percent_changed_time_vs_child_full_load"] <= 0.3,
        "one_percent_changed_exact_and_copied_le_3x": carried("one_percent_changed", "changed_rows"),
        "child_one_percent_changed_exact_and_copied_le_3x": carried("child_one_percent_changed", "child_changed_rows"),
    }
    return out


def format_table(res: dict[str, Any]) -> str:
    """Human summary: median seconds and rows/s per phase, every round, then the ratios."""
    n = res["rows"]
    lines = [f"campus-sync bench: {n:,} {res['object']} rows, median of {res['repeats']} rounds"
             f" (prepare {res['prepare_s']}s)",
             f"{'phase':<26} {'seconds':>8} {'rows/s':>10}  {'rounds':<22} notes"]
    notes = {
        "full_load": "engine, empty state table",
        "unchanged_resync": "engine, first read after the load, {copied:,} rows copied, {inserted}/{updated}/{deleted}",
        "unchanged_resync_settled": "engine, after VACUUM (ANALYZE) as autovacuum leaves it, {copied:,} copied",
        "one_percent_changed": "engine, {copied:,} rows copied, {updated:,} updated",
        "copy_pipe": "raw COPY pipe into table with PK, 1 commit",
        "child_full_load": f"engine, {CHILD} first load: staged, parent check (anti-join), insert",
        "child_one_percent_changed": "engine, {copied:,} rows copied, {updated:,} updated",
        "child_copy_pipe": f"raw COPY pipe, {CHILD} rows, table with PK",
        "insert_rows": ("DbApiHook.insert_rows, commit_every=1000"
                        + (f", measured on {res['insert_rows_rows']:,} rows and scaled"
                           if res["insert_rows_extrapolated"] else "")),
    }
    for phase, note in notes.items():
        s = res[f"{phase}_s"]
        note = note.format(**res.get(f"{phase}_counts", {}))
        rounds = " ".join(f"{x:.2f}" for x in res["samples"][f"{phase}_s"])
        lines.append(f"{phase:<26} {s:>8.3f} {n / s if s else float('inf'):>10,.0f}  {rounds:<22} {note}")
    r, t = res["ratios"], res["targets_met"]
    lines += [
        "",
        f"full load speed / COPY pipe speed   {r['full_load_speed_vs_copy_pipe']:>7.3f}  (target >= 0.6: "
        f"{'ok' if t['full_load_ge_0.6x_copy_pipe'] else 'MISSED'})",
        f"full load speed / insert_rows speed {r['full_load_speed_vs_insert_rows']:>7.2f}  (target >= 4: "
        f"{'ok' if t['full_load_ge_4x_insert_rows'] else 'MISSED'})",
        f"unchanged resync time / full load   {r['unchanged_time_vs_full_load']:>7.3f}  (target <= 0.15: "
        f"{'ok' if t['unchanged_le_0.15x_full_load'] else 'MISSED'}; the old <= 0.5: "
        f"{'ok' if t['unchanged_le_0.5x_full_load'] else 'MISSED'})",
        f"unchanged (settled) time / full load {r['unchanged_settled_time_vs_full_load']:>6.3f}  (target <= 0.15: "
        f"{'ok' if t['unchanged_settled_le_0.15x_full_load'] else 'MISSED'})",
        f"1 % changed time / full load        {r['one_percent_changed_time_vs_full_load']:>7.3f}  (target <= 0.3: "
        f"{'ok' if t['one_percent_changed_le_0.3x_full_load'] else 'MISSED'})",
        f"{CHILD} first load speed / its COPY pipe speed {r['child_full_load_speed_vs_copy_pipe']:>7.3f}"
        f" (target >= 0.6: {'ok' if t['child_full_load_ge_0.6x_copy_pipe'] else 'MISSED'})",
        f"{CHILD} 1 % changed time / its full load {r['child_one_percent_changed_time_vs_child_full_load']:>7.3f}"
        f" (target <= 0.3: {'ok' if t['child_one_percent_changed_le_0.3x_full_load'] else 'MISSED'})",
        f"peak RSS: engine phases {res['engine_peak_rss_mb']} MB, whole run {res['peak_rss_mb']} MB"
        " (the latter adds Airflow's import and insert_rows' fetched rows)",
    ]
    return "\n".join(lines)
