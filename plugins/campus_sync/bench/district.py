"""`campus-sync bench district --students N`: the engine over one whole demo district.

A weekly run is ~54 objects per district, most of a few hundred rows, times up to 170
districts: there the fixed cost of each object (connections, locks, temp tables, ANALYZE,
round trips) weighs more than the rows. This bench seeds one demo district (`demo.seed_district`,
N students), then times the engine alone (no Airflow) over every object the configured state
enables, in plan order, as a first load into an empty state and as an unchanged resync, and
the per-object fixed cost: the median unchanged resync of a 1-row object (District). The
unchanged resync runs twice: right after the load (its first read, which sets every row's hint
bits) and after VACUUM (ANALYZE), as autovacuum leaves the state before a weekly run.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

import psycopg
from psycopg import sql

from campus_sync import config, db, hierarchy
from campus_sync.tools import attendance
from campus_sync.engine import connections
from campus_sync.demo import data as demo
from campus_sync.engine import sync as engine
from campus_sync.engine import schema

DISTRICT_CONN = "campus_bench_whole_district"
STATE_CONN = "campus_bench_whole_state"
DISTRICT = config.District(id="0199", name="Bench Whole District", conn_id=DISTRICT_CONN)
FIXED_OBJECT = "District"  # one row per district: what remains is the per-object fixed cost
FIXED_SAMPLES = 15
REPEATS = 3


def prepare(graph: hierarchy.Hierarchy, cfg: config.Config, students: int, district_dsn: str,
            state_dsn: str) -> dict[str, int]:
    """A freshly seeded district (and its attendance aggregates refreshed, as the DAG does before
    AttDayAggregation) and a state without any of its rows; returns rows seeded per object."""
    with psycopg.connect(district_dsn) as conn:
        seeded = demo.seed_district(conn, graph, DISTRICT, 0, students, 7, cfg.end_year(), cfg.state)
    if attendance.AGGREGATE in graph.enabled(cfg.state) and cfg.attendance_refresh.enabled:
        attendance.refresh(district_dsn, cfg.attendance_refresh.sql, end_year=cfg.end_year(),
                           district_id=DISTRICT.id)
    with psycopg.connect(state_dsn) as conn:
        schema.ensure_state_schema(conn, graph)
        conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.SQL(", ").join(
            schema.table(schema.STATE_SCHEMA, graph.spec(n)) for n in graph.names)))
    with psycopg.connect(state_dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    return seeded


def _pass(graph: hierarchy.Hierarchy, names: tuple[str, ...], district_dsn: str, state_dsn: str,
          end_year: int, reuse: bool = True) -> tuple[float, dict[str, float], list[engine.SyncResult]]:
    """Every object once, in plan order: total seconds, seconds per object, the results. With
    `reuse`, as one process syncing the district does (`connections.reusing`: the same two
    connections throughout); without, each object opens its own, as one Airflow task does."""
    per: dict[str, float] = {}
    results = []
    t0 = time.perf_counter()
    with connections.reusing() if reuse else contextlib.nullcontext():
        for name in names:
            t = time.perf_counter()
            results.append(engine.sync_object(graph, name, district_id=DISTRICT.id, source_dsn=district_dsn,
                                              state_dsn=state_dsn, scope=engine.Scope(end_year=end_year)))
            per[name] = round(time.perf_counter() - t, 4)
    return round(time.perf_counter() - t0, 3), per, results


def _round(graph: hierarchy.Hierarchy, cfg: config.Config, students: int, district_dsn: str,
           state_dsn: str) -> dict[str, Any]:
    names = graph.enabled(cfg.state)
    out: dict[str, Any] = {"seeded": prepare(graph, cfg, students, district_dsn, state_dsn)}
    out["first_load_s"], out["first_load_per_object_s"], first = _pass(
        graph, names, district_dsn, state_dsn, cfg.end_year())
    out["unchanged_resync_s"], out["unchanged_per_object_s"], again = _pass(
        graph, names, district_dsn, state_dsn, cfg.end_year())
    # the same, on the state as a weekly run finds it (autovacuum has run since the load)
    with psycopg.connect(state_dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    out["unchanged_resync_settled_s"], _, settled = _pass(graph, names, district_dsn, state_dsn, cfg.end_year())
    out["unchanged_resync_own_connections_s"], _, own = _pass(graph, names, district_dsn, state_dsn,
                                                              cfg.end_year(), reuse=False)
    again += settled + own
    out["rows"] = sum(r.processed for r in first)
    out["inserted"] = sum(r.inserted for r in first)
    out["unchanged_written"] = sum(r.inserted + r.updated + r.deleted for r in again)
    out["unchanged_copied"] = sum(r.copied for r in again)
    for key, reuse in (("object_fixed_cost_ms", False), ("object_fixed_cost_reused_ms", True)):
        samples = []
        with connections.reusing() if reuse else contextlib.nullcontext():
            for _ in range(FIXED_SAMPLES):
                t = time.perf_counter()
                engine.sync_object(graph, FIXED_OBJECT, district_id=DISTRICT.id, source_dsn=district_dsn,
                                   state_dsn=state_dsn, scope=engine.Scope(end_year=cfg.end_year()))
                samples.append(time.perf_counter() - t)
        out[key] = round(statistics.median(samples) * 1000, 2)
    out["objects"] = len(names)
    return out


def run(students: int, repeats: int = REPEATS) -> dict[str, Any]:
    """`repeats` rounds, each on a freshly seeded district; figures are medians of rounds."""
    graph = hierarchy.load()
    cfg = config.load()
    district_dsn = db.dsn(DISTRICT_CONN, embedded=True)
    state_dsn = db.dsn(STATE_CONN, embedded=True)
    rounds = [_round(graph, cfg, students, district_dsn, state_dsn) for _ in range(repeats)]
    last = rounds[-1]
    med = {k: statistics.median(r[k] for r in rounds)
           for k in ("first_load_s", "unchanged_resync_s", "unchanged_resync_settled_s",
                     "unchanged_resync_own_connections_s", "object_fixed_cost_ms", "object_fixed_cost_reused_ms")}
    first, unchanged = med["first_load_s"], med["unchanged_resync_s"]
    slowest = sorted(last["unchanged_per_object_s"].items(), key=lambda kv: -kv[1])[:5]
    out: dict[str, Any] = {
        "district_students": students,
        "district_repeats": repeats,
        "district_objects": last["objects"],
        "district_rows": last["rows"],
        "district_inserted": last["inserted"],
        "district_first_load_s": first,
        "district_first_load_rows_per_s": round(last["rows"] / max(first, 1e-9)),
        "district_unchanged_resync_s": unchanged,
        "district_unchanged_rows_per_s": round(last["rows"] / max(unchanged, 1e-9)),
        "district_unchanged_written": last["unchanged_written"],
        "district_unchanged_copied": last["unchanged_copied"],
        "district_object_fixed_cost_ms": med["object_fixed_cost_ms"],
        "district_object_fixed_cost_reused_ms": med["object_fixed_cost_reused_ms"],
        "district_unchanged_resync_own_connections_s": med["unchanged_resync_own_connections_s"],
        "district_unchanged_per_object_ms": round(unchanged * 1000 / max(last["objects"], 1), 2),
        "district_unchanged_slowest_s": dict(slowest),
        "district_samples": {k: [r[k] for r in rounds] for k in med},
        "district_first_load_per_object_s": last["first_load_per_object_s"],
        "district_unchanged_per_object_s": last["unchanged_per_object_s"],
    }
    out["district_unchanged_resync_settled_s"] = med["unchanged_resync_settled_s"]
    out["district_ratios"] = {
        "unchanged_time_vs_first_load": round(unchanged / max(first, 1e-9), 3),
        "unchanged_settled_time_vs_first_load": round(med["unchanged_resync_settled_s"] / max(first, 1e-9), 3),
        "unchanged_own_connections_time_vs_first_load": round(
            med["unchanged_resync_own_connections_s"] / max(first, 1e-9), 3)}
    out["district_targets_met"] = {
        k.replace("time_vs", "le_0.2x"): v <= 0.2 for k, v in out["district_ratios"].items()}
    return out


def format_table(res: dict[str, Any]) -> str:
    """Human summary of `run`."""
    r = res["district_ratios"]["unchanged_time_vs_first_load"]
    lines = [
        f"campus-sync bench district: {res['district_students']:,} students, {res['district_objects']} objects,"
        f" {res['district_rows']:,} rows, median of {res['district_repeats']} rounds",
        f"first load        {res['district_first_load_s']:>8.3f} s  {res['district_first_load_rows_per_s']:>10,} rows/s"
        f"  rounds {res['district_samples']['first_load_s']}",
        f"unchanged resync  {res['district_unchanged_resync_s']:>8.3f} s  {res['district_unchanged_rows_per_s']:>10,} rows/s"
        f"  rounds {res['district_samples']['unchanged_resync_s']}"
        f"  ({res['district_unchanged_written']} rows written, {res['district_unchanged_copied']} copied)",
        f"unchanged, settled {res['district_unchanged_resync_settled_s']:>7.3f} s  (after VACUUM (ANALYZE), as"
        " autovacuum leaves the state before a weekly run)",
        f"unchanged, own connections {res['district_unchanged_resync_own_connections_s']:.3f} s  (each object opens"
        " its two connections, as one Airflow task per object does; the passes above share them)",
        f"unchanged / first load {r:.3f}, settled {res['district_ratios']['unchanged_settled_time_vs_first_load']:.3f},"
        f" own connections {res['district_ratios']['unchanged_own_connections_time_vs_first_load']:.3f} (target <= 0.2)",
        f"per-object fixed cost (unchanged {FIXED_OBJECT}, 1 row): {res['district_object_fixed_cost_ms']} ms"
        f" opening its connections, {res['district_object_fixed_cost_reused_ms']} ms reusing them;"
        f" unchanged resync per object: {res['district_unchanged_per_object_ms']} ms",
        "slowest objects of the unchanged resync: " + ", ".join(
            f"{k} {v:.3f}s" for k, v in res["district_unchanged_slowest_s"].items()),
    ]
    return "\n".join(lines)
