"""Benchmark of the Resync State Data page's queries at state scale.

Fills a scratch state database with a year of history for a large state (default 170 districts x
every object offered x 52 weekly full resyncs, plus partial and selective requests, monthly
verification summaries and alerts), all generated server-side with `generate_series`, then
times every query the page runs (median of `--repeat` runs, milliseconds).

    .venv/bin/python -m campus_sync.web.bench [--districts 170] [--weeks 52] [--repeat 5] [--json]
    make bench-web

Uses the embedded PostgreSQL database `bench_web` (dropped and refilled) unless --dsn is given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

from campus_sync import config as config_mod, db, hierarchy
from campus_sync.tools import alerts
from campus_sync.engine import schema
from campus_sync.web import data


def _fresh_db(name: str) -> str:
    server = db.embedded_server()
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.get_uri(name)


def bench_config(districts: int, end_year: int) -> config_mod.Config:
    ds = tuple(config_mod.District(f"{i:04d}", f"District {i}", f"campus_district_{i:04d}")
               for i in range(1, districts + 1))
    return config_mod.Config(state="KY", full_resync_schedule="0 2 * * 0", current_school_year=end_year,
                             state_conn_id="campus_state", districts=ds, source="bench")


def fill(conn: psycopg.Connection, cfg: config_mod.Config, objects: list[str], weeks: int) -> dict[str, int]:
    """A year of history, generated in the database (fast, no client round trips per row)."""
    ids = list(cfg.district_ids)
    y = cfg.end_year()
    p = {"ids": ids, "objects": objects, "weeks": weeks, "y": y}
    # weekly full resyncs: every district x every object, a few errors here and there
    conn.execute(
        """INSERT INTO sync.batch (kind, status, requested_by, requested_at, completed_at, school_year,
                                   end_year, districts, objects, dag_id, run_id, details)
           SELECT 'full', 'complete', 'scheduler', now() - (w * interval '7 days'),
                  now() - (w * interval '7 days') + interval '2 hours', 'current', %(y)s, %(ids)s, %(objects)s,
                  'campus_full_resync', 'scheduled__' || w, '{}'
             FROM generate_series(1, %(weeks)s) w""", p)
    conn.execute(
        """INSERT INTO sync.batch_result (batch_id, district_id, object, status, started_at, finished_at,
                                          processed, errors, unchanged, error_reasons)
           SELECT b.id, d, o, CASE WHEN (hashtext(d || o) + b.id) %% 7 = 0 THEN 'red'
                                   WHEN (hashtext(d || o) + b.id) %% 5 = 0 THEN 'yellow' ELSE 'green' END,
                  b.requested_at + (oi * interval '1 second'), b.requested_at + (oi * interval '2 second'),
                  1000 + abs(hashtext(d || o)) %% 50000, abs(hashtext(o || b.id)) %% 20, 1000,
                  jsonb_build_object('parent_missing:School', abs(hashtext(o || b.id)) %% 20)
             FROM sync.batch b, unnest(%(ids)s::text[]) d, unnest(%(objects)s::text[]) WITH ORDINALITY AS x(o, oi)
            WHERE b.kind = 'full'""", p)
    # partial resyncs (a few objects of one district) and selective syncs, daily
    conn.execute(
        """INSERT INTO sync.batch (kind, status, requested_by, requested_at, completed_at, school_year, end_year,
                                   districts, objects, dag_id, run_id, details)
           SELECT CASE WHEN i %% 2 = 0 THEN 'partial' ELSE 'selective' END, 'complete', 'user' || (i %% 9),
                  now() - (i * interval '13 hours'), now() - (i * interval '13 hours') + interval '5 minutes',
                  'current', %(y)s, ARRAY[(%(ids)s::text[])[1 + i %% array_length(%(ids)s::text[], 1)]],
                  (%(objects)s::text[])[1:6], 'campus_partial_resync', 'manual__' || i,
                  CASE WHEN i %% 2 = 0 THEN '{}'::jsonb
                       ELSE jsonb_build_object('object', 'PersonIdentity', 'keys', jsonb_build_array(i, i + 1),
                                               'records', '1/2') END
             FROM generate_series(1, %(weeks)s * 14) i""", p)
    conn.execute(
        """INSERT INTO sync.batch_result (batch_id, district_id, object, status, started_at, finished_at,
                                          processed, errors)
           SELECT b.id, b.districts[1], o, 'green', b.requested_at, b.completed_at, 100, 0
             FROM sync.batch b, unnest(b.objects) o WHERE b.kind IN ('partial', 'selective')""")
    # monthly verification summaries
    months = max(1, weeks // 4)
    conn.execute(
        """INSERT INTO sync.verification_run (requested_by, started_at, completed_at, end_year, districts)
           SELECT 'admin', now() - (m * interval '30 days'), now() - (m * interval '30 days'), %(y)s, %(ids)s
             FROM generate_series(1, %(months)s) m""", dict(p, months=months))
    conn.execute(
        """INSERT INTO sync.verification_result (run_id, district_id, object, distinct_rows, at_district,
                   at_state, refused, missing, extra, different, total_errors, accuracy, verified_at)
           SELECT v.id, d, o, 1000, 1000, 1000, 0, 0, 0, 0, 0, 100, v.started_at
             FROM sync.verification_run v, unnest(%(ids)s::text[]) d, unnest(%(objects)s::text[]) o""", p)
    for week in range(weeks):
        alerts.add_state_resync_requested(conn, ids[:10], end_year=y, dag_id="campus_partial_resync",
                                          run_id=f"state-{week}")
    conn.commit()
    conn.execute("ANALYZE")
    counts = {}
    for t in ("batch", "batch_result", "last_result", "verification_result", "process_alert"):
        counts[t] = conn.execute(sql.SQL("SELECT count(*) FROM sync.{}").format(sql.Identifier(t))).fetchone()[0]
    return counts


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(runs), 2)


def run(districts: int = 170, weeks: int = 52, repeat: int = 5, dsn: str | None = None) -> dict:
    graph = hierarchy.load()
    cfg = bench_config(districts, 2027)
    objects = list(graph.enabled(cfg.state))
    target = dsn or _fresh_db("bench_web")
    with psycopg.connect(target) as conn:
        schema.ensure_state_schema(conn, graph)
        conn.commit()
        t = time.perf_counter()
        counts = fill(conn, cfg, objects, weeks)
        fill_s = round(time.perf_counter() - t, 1)
        mid = cfg.district_ids[districts // 2]
        full_id = conn.execute("SELECT max(id) FROM sync.batch WHERE kind = 'full'").fetchone()[0]
        queries = {
            "resync view (one district, every object)": lambda: data.resync_rows(conn, graph, cfg, mid),
            "resync view, previous year": lambda: data.resync_rows(conn, graph, cfg, mid, "previous"),
            "history page 1 (25)": lambda: data.history_page(conn, page=1),
            "history page 20 (25)": lambda: data.history_page(conn, page=20),
            "history, one district, page 1": lambda: data.history_page(conn, district_id=mid),
            "selective history page 1": lambda: data.history_page(conn, kind="selective"),
            "request detail (full resync, one district)": lambda: data.batch_detail(conn, graph, full_id, mid),
            "progress of a run": lambda: data.batch_by_run(conn, "campus_full_resync", "scheduled__1"),
            "verification summary (+ one district)": lambda: data.verification(conn, cfg, mid),
            "process alerts": lambda: alerts.list_alerts(conn, cfg.district_ids[0]),
            "clear history preview": lambda: data.clear_preview(conn),
            "clear history preview, one district": lambda: data.clear_preview(conn, None, mid),
        }
        timings = {name: timed(fn, repeat) for name, fn in queries.items()}
        # (timed() warms up first, so pandas' one-off import is not counted)
        timings["history CSV (every request)"] = timed(lambda: data.history_csv(conn), 1)
        timings["verification CSV (every district x object)"] = timed(lambda: data.verification_csv(conn, cfg), 1)
    return {"districts": districts, "objects": len(objects), "weeks": weeks, "rows": counts,
            "fill_seconds": fill_s, "median_ms": timings, "repeat": repeat}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--districts", type=int, default=170)
    ap.add_argument("--weeks", type=int, default=52)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dsn", help="an empty scratch database (default: embedded database bench_web)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = run(args.districts, args.weeks, args.repeat, args.dsn)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['districts']} districts x {result['objects']} objects x {result['weeks']} weeks; rows: "
          + ", ".join(f"{k} {v:,}" for k, v in result["rows"].items()) + f"; filled in {result['fill_seconds']} s")
    for name, ms in result["median_ms"].items():
        print(f"  {ms:>9.2f} ms  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
