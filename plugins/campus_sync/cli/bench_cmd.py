"""`campus-sync bench --rows N [--json]`: engine speed against a raw COPY pipe and insert_rows.
`campus-sync bench district --students N`: the engine over every object of one demo district.
`campus-sync bench airflow [...]`: per-task cost of a resync under the real scheduler."""

from __future__ import annotations

import argparse
import json


def _positive(text: str) -> int:
    value = int(text.replace("_", ""))
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="time the engine on N generated PersonIdentity rows "
                                     "(databases campus_bench_district / campus_bench_state); "
                                     "`bench airflow`: a resync's per-task cost under the real scheduler")
    b.add_argument("target", nargs="?", choices=["engine", "airflow", "district", "edfi"], default="engine",
                   help="engine (default), district (the engine over one whole demo district), airflow, or edfi "
                        "(--api-only: students POSTed to a local Ed-Fi API, per second)")
    b.add_argument("--rows", type=_positive, default=1_000_000, help="rows to generate (default 1000000)")
    b.add_argument("--insert-rows-max", type=_positive, default=None, metavar="N",
                   help="time insert_rows on at most N rows and scale linearly (default 100000)")
    b.add_argument("--repeat", type=_positive, default=None, metavar="N",
                   help="rounds to run; every figure is the median (default 3)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--students", type=_positive, default=None,
                   help="bench district: students in the seeded demo district (default 10000); "
                        "bench airflow --districts: students per district (default 50)")
    e = b.add_argument_group("bench edfi")
    e.add_argument("--api-only", action="store_true", help="bench edfi: POST --students students straight to the API")
    e.add_argument("--concurrency", type=_positive, default=8, help="bench edfi: requests in flight (default 8)")
    e.add_argument("--dsn", default=None, help="bench edfi: PostgreSQL for the API (default: embedded, database edfi_bench)")
    e.add_argument("--lightbeam", default=None, metavar="PATH",
                   help="bench edfi: the lightbeam executable to compare with (default: `lightbeam` on PATH, if any)")
    a = b.add_argument_group("bench airflow")
    a.add_argument("--url", help="Airflow base URL (default: the local deployment's, see --start)")
    a.add_argument("--user", default="admin", help="Airflow user (default admin)")
    a.add_argument("--password", help="default: from $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated")
    a.add_argument("--dag", default="campus_full_resync", help="DAG to run (default campus_full_resync)")
    a.add_argument("--conf", default="{}", help="the run's conf as JSON (default {})")
    a.add_argument("--start", action="store_true",
                   help="start a local Airflow for the bench (as `make airflow`) and stop it afterwards")
    a.add_argument("--port", type=_positive, default=8080, help="with --start: API/UI port (default 8080)")
    a.add_argument("--floor", action="store_true",
                   help="with --start: then run the same DAG shape with no-op object tasks (campus_bench_floor) "
                        "and report what Airflow alone costs per task")
    a.add_argument("--floor-only", action="store_true",
                   help="with --districts --start: run only the floor DAG of --shape, not the resync (implied by "
                        "the shapes the product does not build)")
    a.add_argument("--timeout", type=_positive, default=1800, help="seconds to wait for the run (default 1800)")
    a.add_argument("--districts", type=_positive, default=None, metavar="N",
                   help="with --start: seed N demo districts (--students each) in a home of their own "
                        "(.campus_sync/bench-scale: its own embedded PostgreSQL, Airflow and configuration; the "
                        "demo is untouched) and run the full resync over them, reporting peak connections and "
                        "metadata-DB rows added")
    a.add_argument("--shape", choices=["per_object", "per_district_object", "per_district_level", "per_district"],
                   default="per_object",
                   help="with --districts: full_resync_shape of the bench deployment (default per_object); "
                        "per_district_level (one task per district per hierarchy level) and per_district (one "
                        "task per district) are not shapes of the product: with --floor only, their floor alone")
    a.add_argument("--parallel", type=_positive, default=4,
                   help="with --districts: districts_in_parallel (default 4)")
    a.add_argument("--pool-slots", type=_positive, default=2,
                   help="with --districts: state_pool_slots, the Airflow pool's size (default 2)")
    a.add_argument("--keep-state", action="store_true",
                   help="with --districts: keep the state from the previous bench run (an unchanged resync); "
                        "default: an empty state (a first load)")
    a.add_argument("--executor", choices=["LocalExecutor", "CeleryExecutor"], default="LocalExecutor",
                   help="with --start: the executor (CeleryExecutor starts redis-server on loopback and "
                        "--celery-workers workers)")
    a.add_argument("--celery-workers", type=_positive, default=None, metavar="N",
                   help="with --start --executor CeleryExecutor: Celery workers to start (default "
                        "$AIRFLOW_CELERY_WORKERS or 1), each with --celery-concurrency slots")
    a.add_argument("--celery-concurrency", type=_positive, default=None, metavar="N",
                   help="with --executor CeleryExecutor: task slots per worker (default 4)")
    b.set_defaults(func=cmd_bench)


def cmd_bench_airflow(args: argparse.Namespace) -> int:
    import os
    import sys
    import tempfile
    from pathlib import Path

    from campus_sync import db
    from campus_sync.bench import airflow_tasks as bench_airflow
    from campus_sync.orchestration import tasks

    deployment = None
    if args.floor and not args.start:
        raise SystemExit("--floor needs --start (the floor DAG lives in the bench's own dags folder)")
    if args.districts and not args.start:
        raise SystemExit("--districts needs --start (the districts get an Airflow of their own)")
    if args.floor_only and not (args.districts and args.start):
        raise SystemExit("--floor-only needs --districts N --start")
    args.floor = args.floor or args.floor_only
    floor_only = args.floor_only or args.shape in bench_airflow.FLOOR_ONLY_SHAPES
    if floor_only and not (args.floor and args.districts):
        raise SystemExit(f"--shape {args.shape} is not a shape of the product: only its floor is measured, "
                         "with --districts N --start --floor (or --floor-only)")
    if (args.celery_workers or args.celery_concurrency) and args.executor != "CeleryExecutor":
        raise SystemExit("--celery-workers and --celery-concurrency need --executor CeleryExecutor")
    from campus_sync.orchestration.local_airflow import celery_workers_from_env, check_celery_workers

    try:
        args.celery_workers = (check_celery_workers(args.celery_workers, "--celery-workers")
                               if args.celery_workers is not None else celery_workers_from_env())
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    seeded = scale_home = None
    if args.districts:
        scale_home = db.home() / bench_airflow.SCALE_HOME_DIR
        product_shape = args.shape if args.shape in bench_airflow.PRODUCT_SHAPES else "per_object"
        bench_airflow.use_scale_home(scale_home, args.districts, product_shape, args.parallel, args.pool_slots)
        if not floor_only:  # a floor runs no SQL: nothing to seed, no state to empty
            seeded = bench_airflow.seed_districts(args.students or 50)
            if not args.keep_state:
                bench_airflow.empty_state()
    shape = args.shape if args.districts else None
    scratch = tempfile.TemporaryDirectory(prefix="campus-bench-floor-") if args.floor else None
    if args.start:
        from campus_sync import config, paths
        from campus_sync.orchestration.local_airflow import LocalAirflow, free_port  # the `make airflow` launcher

        shape = shape or config.load().full_resync_shape
        extra: dict[str, str] = {}
        if scratch is not None:
            bench_airflow.floor_dags_folder(Path(scratch.name) / "dags", paths.PROJECT_ROOT / "dags", shape)
            extra["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(scratch.name) / "dags")
        more = {"home": scale_home / "airflow"} if scale_home else {}
        if args.celery_concurrency:
            more["celery_concurrency"] = args.celery_concurrency
        deployment = LocalAirflow(port=args.port, extra_env=extra, executor=args.executor,
                                  redis_port=free_port("127.0.0.1"), celery_workers=args.celery_workers, **more)
    try:
        if deployment is not None:
            deployment.start()  # inside the try: a start that times out still stops what it started
        home = deployment.home if deployment else Path(os.environ.get("AIRFLOW_HOME") or db.home() / "airflow")
        url = args.url or (deployment.base_url if deployment else f"http://localhost:{args.port}")
        password = args.password
        if password is None:
            pw_file = home / "simple_auth_manager_passwords.json.generated"
            password = json.loads(pw_file.read_text())[args.user] if pw_file.exists() else ""
        client = bench_airflow.Client(url, args.user, password)
        # Runs an interrupted bench left would be resumed by the scheduler next to the measured
        # one: failed first in the bench's own Airflow; in another's (--url) only reported.
        triggered = ([] if floor_only else [args.dag]) + ([bench_airflow.FLOOR_DAG_ID] if args.floor else [])
        leftovers = client.fail_leftover_runs(triggered, fail=deployment is not None)
        for left in leftovers:
            print(f"bench: leftover {left['state']} run {left['dag_id']} {left['run_id']}: {left['action']}",
                  file=sys.stderr, flush=True)
        sampler = meta = None
        if args.districts:
            from campus_sync import config

            cfg = config.load()
            sampler = bench_airflow.ConnectionSampler("campus_state", [d.conn_id for d in cfg.districts])
            meta = deployment.meta_db
            if not floor_only:
                client.wait_dag(args.dag)
                client.wait_shape(args.dag, shape)
        if floor_only:
            client.wait_dag(bench_airflow.FLOOR_DAG_ID)
            client.wait_floor_shape(shape)
            res = bench_airflow.run(client, None, bench_airflow.FLOOR_DAG_ID, {}, timeout=args.timeout,
                                    sampler=None, meta_db=meta)
            res["floor_only"] = True
        else:
            res = bench_airflow.run(client, tasks.state_dsn(), args.dag, json.loads(args.conf),
                                    timeout=args.timeout, sampler=sampler, meta_db=meta)
        res["shape"], res["executor"], res["seeded"] = shape, args.executor, seeded
        res["leftover_runs"] = leftovers
        if deployment is not None and deployment.celery:
            res["celery_workers"], res["celery_concurrency"] = deployment.celery_workers, deployment.celery_concurrency
        if args.floor and not floor_only:
            res["floor"] = bench_airflow.floor(client, res, timeout=args.timeout, shape=shape)
    finally:
        if deployment is not None:
            deployment.stop()
        if scratch is not None:
            scratch.cleanup()
    print(bench_airflow.to_json(res) if args.json else bench_airflow.format_report(res))
    return 0 if res["state"] == "success" else 1


def cmd_bench(args: argparse.Namespace) -> int:
    if args.target != "airflow" and args.students is None:
        args.students = 10_000
    if args.target == "edfi":
        from campus_sync.cli import edfi_cmd

        return edfi_cmd.cmd_bench(args)
    if args.target == "airflow":
        return cmd_bench_airflow(args)
    if args.target == "district":
        from campus_sync.bench import district as bench_district

        res = bench_district.run(args.students, args.repeat or bench_district.REPEATS)
        print(json.dumps(res) if args.json else bench_district.format_table(res))
        return 0
    from campus_sync.bench import engine_load as bench  # psycopg and, later, Airflow: only when the command runs

    res = bench.run(args.rows, args.insert_rows_max or bench.INSERT_ROWS_MAX, args.repeat or bench.REPEATS)
    print(json.dumps(res) if args.json else bench.format_table(res))
    return 0
