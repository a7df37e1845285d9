"""`campus-sync demo|history|dsn|dag`: seed demo districts, run DAGs, read the history."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from campus_sync import config, db, hierarchy


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="demo districts on the embedded PostgreSQL")
    dsub = demo.add_subparsers(dest="demo_command", required=True, metavar="ACTION")
    s = dsub.add_parser("seed", help="fill district databases with deterministic demo data")
    _seed_args(s)
    s.set_defaults(func=cmd_demo_seed)
    r = dsub.add_parser("run", help="seed (first time), run campus_full_resync once, then an Ed-Fi resync of "
                                    "configuration demo into the local Ed-Fi API; print results")
    _seed_args(r)
    r.add_argument("--reseed", action="store_true", help="seed again even if already seeded")
    r.set_defaults(func=cmd_demo_run)
    st = dsub.add_parser("stop", help="stop the embedded PostgreSQL (`make demo-stop`); the data stays",
                         description="Stop the embedded PostgreSQL of $CAMPUS_SYNC_HOME (default .campus_sync/). "
                                     "Refused while `make airflow` runs on it (its metadata lives there).")
    st.add_argument("--force", action="store_true", help="stop it even while the local Airflow runs")
    st.set_defaults(func=cmd_demo_stop)
    cl = dsub.add_parser("clean", help="stop the local Airflow and the embedded PostgreSQL, then remove the "
                                       "demo's data (`make clean-demo`)")
    cl.set_defaults(func=cmd_demo_clean)

    h = sub.add_parser("history", help="resync requests, newest first; `history clear` deletes them",
                       description="List resync requests (newest first), or `history clear [--before DATE] "
                                   "[--yes]`: delete finished requests' history rows (never synced data).")
    h.add_argument("action", nargs="?", choices=["clear"], help="clear: delete history rows")
    h.add_argument("--limit", type=_positive, default=10, help="how many requests (≥ 1)")
    h.add_argument("--json", action="store_true")
    h.add_argument("--before", metavar="DATE", help="clear: only requests made before DATE (YYYY-MM-DD)")
    h.add_argument("--yes", action="store_true", help="clear: do not ask for confirmation")
    h.set_defaults(func=cmd_history)

    d = sub.add_parser("dsn", help="connection URI in use: `state` or `district:<id>`")
    d.add_argument("target")
    d.set_defaults(func=cmd_dsn)

    g = sub.add_parser("dag", help="run a DAG of the package once (dag.test)")
    gsub = g.add_subparsers(dest="dag_command", required=True, metavar="ACTION")
    gr = gsub.add_parser("run", help="run DAG_ID once end to end; exit 1 if the run fails")
    gr.add_argument("dag_id")
    gr.add_argument("--conf", default="{}", help="JSON object of params")
    gr.add_argument("--confirm-deletes", action="store_true",
                    help="allow this run's mass deletes / emptied objects (sets the confirm_deletes param)")
    gr.set_defaults(func=cmd_dag_run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _seed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--districts", type=int, default=None, help="how many configured districts (default all)")
    p.add_argument("--students", type=int, default=200, help="students per district")
    p.add_argument("--seed", type=int, default=42)


def cmd_demo_seed(args: argparse.Namespace) -> int:
    import psycopg

    from campus_sync.demo import data as demo

    cfg = config.load()
    graph = hierarchy.load()
    for i, district in demo.iter_districts(cfg, args.districts):
        with psycopg.connect(db.dsn(district.conn_id, f"district {district.id}")) as conn:
            counts = demo.seed_district(conn, graph, district, i, args.students, args.seed, cfg.end_year(), cfg.state)
        print(f"district {district.label}: {sum(counts.values())} rows in {len(counts)} objects")
    return 0


def cmd_demo_run(args: argparse.Namespace) -> int:
    from campus_sync.cli import CliError

    cfg = config.load()
    marker = db.home() / f".seeded-{args.districts}-{args.students}-{args.seed}-{_deployment_key(cfg)}"
    if args.reseed or not marker.exists():
        cmd_demo_seed(args)
        marker.touch()
    districts = [d.id for d in cfg.districts][: args.districts or None]
    print(f"running campus_full_resync for districts {', '.join(districts)} (state {cfg.state}) ...", flush=True)
    from campus_sync.orchestration import runner

    outcome = runner.run_dag("campus_full_resync", {"districts": districts})
    _print_last_batch()
    if not outcome.ok:
        raise CliError(f"campus_full_resync run {outcome.run_id} ended {outcome.state}")
    from campus_sync.demo import edfi_demo
    from campus_sync.edfi.api.server import ApiStartError

    try:
        ok = edfi_demo.run()
    except ApiStartError as exc:
        raise CliError(f"the local Ed-Fi API did not start: {exc}") from None
    if not ok:  # the Ed-Fi Resync of configuration demo into the local Ed-Fi API
        raise CliError("the Ed-Fi resync of configuration demo failed (see its results above)")
    return 0


# What $CAMPUS_SYNC_HOME holds for the demo, and `demo clean` removes: the embedded PostgreSQL's
# data directory, the local Airflow's home (`make airflow`, `make demo`'s dag.test metadata), the
# hierarchy cache, the runtime directory (pgserver's lock), the local Ed-Fi API's state (its
# documents live in pgdata) and the seeding markers.
DEMO_DATA = ("pgdata", "airflow", "cache", "runtime", "edfi-api")


def _stop_local_edfi_api() -> None:
    """The local Ed-Fi API keeps its documents on the embedded server: it stops with it."""
    from campus_sync.edfi.api.server import LocalEdFiApi

    pid = LocalEdFiApi().stop()
    if pid:
        print(f"stopped the local Ed-Fi API (pid {pid})")


def cmd_demo_stop(args: argparse.Namespace) -> int:
    """Stop the embedded server, unless the local Airflow keeps its metadata on it."""
    from campus_sync.cli import CliError

    if not args.force:
        from campus_sync.orchestration.local_airflow import LocalAirflow, default_home

        running = [c for c, pid in LocalAirflow(home=default_home()).pids().items() if pid]
        if running:
            raise CliError(f"the local Airflow in {default_home()} runs on the embedded PostgreSQL "
                           f"({', '.join(running)}): make airflow-stop first (or demo stop --force)")
    _stop_local_edfi_api()
    pgdata = db.stop_embedded()
    print(f"stopped the embedded PostgreSQL ({pgdata})" if pgdata
          else f"the embedded PostgreSQL ({db.home() / 'pgdata'}) is not running")
    return 0


def cmd_demo_clean(args: argparse.Namespace) -> int:
    """Stop the local Airflow and the embedded server, then remove the demo's data (DEMO_DATA and
    seeding markers); anything else in $CAMPUS_SYNC_HOME is left and named."""
    import shutil

    from campus_sync.orchestration.local_airflow import AirflowStopError, LocalAirflow, default_home
    from campus_sync.cli import CliError

    home = db.home()
    try:
        stopped = LocalAirflow(home=default_home()).stop()
    except AirflowStopError as exc:
        raise CliError(f"the local Airflow in {default_home()} did not stop, nothing removed: {exc}") from None
    if stopped:
        print(f"stopped Airflow: {', '.join(stopped)}")
    _stop_local_edfi_api()
    if db.stop_embedded():
        print(f"stopped the embedded PostgreSQL ({home / 'pgdata'})")
    if not home.is_dir():
        print(f"nothing to remove ({home} does not exist)")
        return 0
    removed, kept = [], []
    for entry in sorted(home.iterdir()):
        if entry.name in DEMO_DATA or entry.name.startswith(".seeded-"):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            removed.append(entry.name)
        else:
            kept.append(entry.name)
    if not kept:
        home.rmdir()
    print(f"removed {', '.join(removed) or 'nothing'} from {home}"
          + (f"; left in place (not the demo's): {', '.join(kept)}" if kept else ""))
    return 0


def _deployment_key(cfg: config.Config) -> str:
    """Which deployment a demo seeding was for (KY default, the NV/BIE examples, ...)."""
    import hashlib

    return hashlib.sha1(f"{cfg.state}|{cfg.state_conn_id}|{','.join(cfg.district_ids)}".encode()).hexdigest()[:10]


def _print_last_batch() -> None:
    import psycopg

    from campus_sync.tools import history
    from campus_sync.orchestration import tasks

    with psycopg.connect(tasks.state_dsn()) as conn:
        (batch,) = history.batches(conn, limit=1)
    print(f"\nResync results — batch {batch['id']} ({batch['kind']}, {batch['status']}), "
          f"requested {_ts(batch['requested_at'])} by {batch['requested_by']}, school year ending {batch['end_year']}")
    by_district: dict[str, list[dict]] = {}
    for r in batch["results"]:
        by_district.setdefault(r["district"], []).append(r)
    order = {n: i for i, n in enumerate(hierarchy.load().names)}
    from campus_sync.tools import attendance

    if attendance.AGGREGATE in order:  # the refresh row right above the object it feeds
        order[attendance.REFRESH] = order[attendance.AGGREGATE] - 0.5
    for district, rows in sorted(by_district.items()):
        print(f"\nDistrict {district}")
        print(f"  {'object':<28} {'last resync':<20} {'processed':>9} {'errors':>6} {'ins':>6} {'upd':>6} {'del':>6}  status")
        for r in sorted(rows, key=lambda x: order.get(x["object"], 999)):
            print(f"  {r['object']:<28} {_ts(r['started_at']):<20} {r['processed']:>9} {r['errors']:>6} "
                  f"{r['inserted']:>6} {r['updated']:>6} {r['deleted']:>6}  {r['status']}")
        synced = [r for r in rows if r["object"] in order and r["object"] != attendance.REFRESH]  # objects only
        tot = {k: sum(r[k] for r in synced) for k in ("processed", "errors", "inserted", "updated", "deleted", "unchanged")}
        print(f"  {'total':<28} {'':<20} {tot['processed']:>9} {tot['errors']:>6} {tot['inserted']:>6} "
              f"{tot['updated']:>6} {tot['deleted']:>6}  unchanged {tot['unchanged']}")


def _ts(value) -> str:
    return value.strftime("%m/%d/%Y %H:%M:%S") if isinstance(value, dt.datetime) else str(value or "")


def _jsonable(value):
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(type(value))


def cmd_history(args: argparse.Namespace) -> int:
    from campus_sync.tools import history
    from campus_sync.orchestration import tasks

    if args.action == "clear":
        from campus_sync.cli import selective_cmd

        return selective_cmd.cmd_history_clear(args)
    if args.before or args.yes:
        from campus_sync.cli import CliError

        raise CliError("--before and --yes go with `history clear`")

    from campus_sync.tools import liveness

    with tasks.open_state() as conn:
        liveness.reap(conn, liveness.airflow_metadata_state)
        batches = history.batches(conn, limit=args.limit)
    if args.json:
        keep = ("id", "kind", "status", "requested_at", "completed_at", "requested_by", "school_year",
                "districts", "objects", "results", "end_year", "check_dependencies", "details")
        fields = ("district", "object", "processed", "errors", "inserted", "updated", "deleted", "unchanged", "status",
                  "excluded", "error_reasons", "started_at", "finished_at")
        doc = {"batches": [{**{k: b[k] for k in keep if k != "results"},
                            "results": [{k: r[k] for k in fields} for r in b["results"]]} for b in batches]}
        print(json.dumps(doc, default=_jsonable, indent=2))
        return 0
    if not batches:
        print("no resync requests recorded")
    for b in batches:
        errors = sum(r["errors"] for r in b["results"])
        processed = sum(r["processed"] for r in b["results"])
        print(f"#{b['id']:<5} {_ts(b['requested_at'])}  {b['kind']:<13} {b['status']:<9} by {b['requested_by']:<12} "
              f"{b['school_year']:<8} districts {','.join(b['districts'])}  objects {len(b['objects'])}  "
              f"processed {processed} errors {errors}"
              + (f"  {b['details'].get('object')} Records: {b['details'].get('records')}"
                 if b["kind"] == "selective" and b["details"] else "")
              + (f"\n       abandoned: {b['details']['abandoned']}" if b["status"] == "abandoned" else ""))
    return 0


def cmd_dsn(args: argparse.Namespace) -> int:
    from campus_sync.cli import CliError

    cfg = config.load()
    if args.target == "state":
        print(db.uri(cfg.state_conn_id))
    elif args.target.startswith("district:"):
        try:
            district = cfg.district(args.target.split(":", 1)[1])
            print(db.uri(district.conn_id, f"district {district.id}"))
        except config.ConfigError as exc:
            raise CliError(str(exc)) from None
    else:
        raise CliError(f"unknown target {args.target!r}: use 'state' or 'district:<id>'")
    return 0


def cmd_dag_run(args: argparse.Namespace) -> int:
    from campus_sync.cli import CliError

    try:
        conf = json.loads(args.conf)
    except json.JSONDecodeError as exc:
        raise CliError(f"--conf is not valid JSON: {exc}") from None
    if not isinstance(conf, dict):
        raise CliError("--conf must be a JSON object")
    if args.confirm_deletes:
        conf["confirm_deletes"] = True
    from campus_sync.orchestration import runner

    try:
        outcome = runner.run_dag(args.dag_id, conf)
    except KeyError as exc:
        raise CliError(str(exc).strip('"')) from None
    except Exception as exc:  # trigger-time refusals (param validation) land here
        if type(exc).__name__ == "ParamValidationError":
            raise CliError(f"refused at trigger time: {exc}") from None
        raise
    bad = {k: v for k, v in outcome.task_states.items() if v in ("failed", "upstream_failed")}
    print(f"{args.dag_id} run {outcome.run_id}: {outcome.state}")
    for k, v in sorted(bad.items()):
        print(f"  {k}: {v}", file=sys.stderr)
    return 0 if outcome.ok else 1
