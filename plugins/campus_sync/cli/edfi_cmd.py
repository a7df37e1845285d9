"""`campus-sync edfi api start|stop|status`: the local Ed-Fi API in the background;
`campus-sync edfi model`: check the Ed-Fi resource model and show its order;
`campus-sync edfi resync`: an Ed-Fi Resync in this process."""

from __future__ import annotations

import argparse
import json

from campus_sync.edfi.api.describe import describe


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (a share of requests), got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 (any free port) to 65535, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _kinds(text: str) -> tuple[str, ...]:
    from campus_sync.edfi.api.faults import KINDS

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown fault kind(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(KINDS)}")
    return kinds


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("edfi", help="Ed-Fi: the local Ed-Fi API and the resource model",
                       description="The local Ed-Fi API (a local implementation of the Ed-Fi API client contract for "
                                   "development and tests, on PostgreSQL) and the Ed-Fi resource model in include/edfi/.")
    esub = e.add_subparsers(dest="edfi_command", required=True, metavar="COMMAND")
    api = esub.add_parser("api", help="run the local Ed-Fi API in the background: start, stop, status")
    asub = api.add_subparsers(dest="api_command", required=True, metavar="ACTION")
    for name, func, help_ in (("start", cmd_start, "start in the background (harmless when it already runs)"),
                              ("stop", cmd_stop, "stop exactly the server `start` started"),
                              ("status", cmd_status, "whether it runs, its URLs and client credentials")):
        p = asub.add_parser(name, help=help_)
        p.add_argument("--json", action="store_true", help="print one JSON line")
        p.add_argument("--port", type=_port, default=None,
                       help="port (default 8765; 0: any free port)" if name == "start" else argparse.SUPPRESS)
        if name == "start":
            p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
            p.add_argument("--token-ttl", type=_positive, default=1800, metavar="S",
                           help="access token lifetime in seconds (default 1800)")
            p.add_argument("--faults", type=_rate, default=0.0, metavar="RATE",
                           help="share of requests (token requests included) that fail: 429 or 503 with Retry-After, "
                                "a reset connection, a slow answer, or 401 as if the token had expired (default 0)")
            p.add_argument("--fault-kinds", type=_kinds, default=("429", "503", "reset", "slow", "401"), metavar="K,K",
                           help="which faults to draw from: 429,503,reset,slow,401 (default all)")
            p.add_argument("--fault-seed", type=int, default=None, help="seed for a reproducible fault sequence")
            p.add_argument("--retry-after", type=_positive, default=1, metavar="S",
                           help="Retry-After of 429/503 faults, in seconds (default 1)")
            p.add_argument("--fault-delay", type=float, default=2.0, metavar="S",
                           help="delay of a slow answer, in seconds (default 2)")
            p.add_argument("--routes", choices=["shared", "year", "context-year", "tenant-year"], default="shared",
                           help="route style: shared /data/v3/ed-fi/... (ODS/API 7.x, default), year "
                                "/data/v3/{year}/ed-fi/... (5.x/6.x year-specific), context-year "
                                "/{year}/data/v3/ed-fi/... (7.x with a year context, no tenant), tenant-year "
                                "/{tenant}/{year}/data/v3/ed-fi/... (7.x multi-tenant with a year context)")
            p.add_argument("--tenant", default="district", help="tenant-year routes: the tenant (default district)")
            p.add_argument("--school-year", type=int, default=None,
                           help="the school year the printed URLs name (default: the current school year)")
            p.add_argument("--token-limit", type=int, default=15,
                           help="live tokens one client may hold, as ODS/API 7.3 (default 15; 0: no limit)")
            p.add_argument("--data-standard", default=None, metavar="VERSION",
                           help="Ed-Fi Data Standard of the resources (default 5.2; 4.0: its natural keys, required "
                                "fields and core descriptor values, see include/edfi/README.md)")
            p.add_argument("--dsn", default=None,
                           help="PostgreSQL to store in (default: the embedded server's edfi_local database)")
            p.add_argument("--key", default=None, help="client key to accept (default: generated once and kept)")
            p.add_argument("--secret", default=None, help="client secret to accept (with --key)")
            p.add_argument("--timeout", type=float, default=90, help="seconds to wait for it to answer (default 90)")
        p.set_defaults(func=func)
    m = esub.add_parser("model", help="check the Ed-Fi resource model (include/edfi/) and print its order")
    m.add_argument("--json", action="store_true", help="print the dependency order as JSON")
    m.add_argument("--data-standard", default=None, metavar="VERSION", help="the Data Standard (default 5.2; or 4.0)")
    m.set_defaults(func=cmd_model)
    register_resync(esub)


def register_resync(esub: argparse._SubParsersAction) -> None:
    """`campus-sync edfi resync`: an Ed-Fi Resync run in this process (plan, start, send, finish)."""
    r = esub.add_parser("resync", help="send a district's Campus data to its Ed-Fi API (only what changed)",
                        description="Run an Ed-Fi Resync in this process: the configuration's resources, in "
                                    "dependency order, only documents that changed since the last successful send; "
                                    "documents gone from Campus are deleted in reverse order. Prints per-resource results.")
    r.add_argument("--configuration", required=True, help="an Ed-Fi configuration of the deployment config (edfi:)")
    where = r.add_mutually_exclusive_group(required=True)
    where.add_argument("--school", dest="schools", action="append", default=[], metavar="ID",
                       help="a school id (repeatable)")
    where.add_argument("--all-schools", action="store_true",
                       help="every school of the district (heavy: a large district sends a lot; run off-peak)")
    r.add_argument("--person-ids", default=None, help="Campus person IDs (separated by commas or spaces)")
    r.add_argument("--course-ids", default=None, help="Campus course IDs")
    r.add_argument("--section-ids", default=None, help="Campus section IDs")
    r.add_argument("--resources", nargs="+", default=None, metavar="RESOURCE",
                   help="resources to send (default: every resource the configuration turns on)")
    r.add_argument("--no-select-dependencies", action="store_true",
                   help="send only the given resources, not the resources they depend on")
    r.add_argument("--run-cleanup", action="store_true",
                   help="Tennessee only: also find the documents at the API, in the request's scope, that Campus "
                        "does not have (reads the API: may dramatically increase processing time); a dry run "
                        "that reports them unless --confirm-cleanup")
    r.add_argument("--confirm-cleanup", action="store_true",
                   help="with --run-cleanup: delete what the clean-up finds (under the mass-delete guard)")
    r.add_argument("--confirm-deletes", action="store_true", help="override the mass-delete guard once")
    r.add_argument("--plan", action="store_true", help="print the planned resources in order and stop")
    r.add_argument("--failed-csv", default=None, metavar="FILE", help="write the failed documents as CSV to FILE")
    r.add_argument("--user", default=None, help="who requests it (default: the login name)")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    r.set_defaults(func=cmd_resync)


def cmd_resync(args: argparse.Namespace) -> int:
    import getpass

    from campus_sync.cli import CliError
    from campus_sync.edfi import cleanup, resync

    params = {"configuration": args.configuration, "schools": args.schools, "all_schools": args.all_schools,
              "person_ids": args.person_ids, "course_ids": args.course_ids, "section_ids": args.section_ids,
              "resources": args.resources, "select_dependencies": not args.no_select_dependencies,
              "run_cleanup": args.run_cleanup, "confirm_cleanup": args.confirm_cleanup,
              "confirm_deletes": args.confirm_deletes}
    try:
        request = resync.parse_request(params)
        if args.plan:
            order = resync.plan(request)
            print(json.dumps({"plan": order}) if args.json else "planned resources, in order:\n  " + "\n  ".join(order))
            return 0
        summary = cleanup.run(request, user=args.user or getpass.getuser())
    except (resync.EdfiRequestError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if args.failed_csv:
        with open(args.failed_csv, "w", encoding="utf-8", newline="") as f:
            f.write(resync.failed_documents_csv(summary["batch_id"]))
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        print(f"Ed-Fi resync {summary['batch_id']} ({request.configuration}, district {request.district_id}, "
              f"{request.school_year}): {summary['status']}")
        print(f"  {'resource':<52}{'status':>9}{'processed':>10}{'inserted':>9}{'updated':>8}{'deleted':>8}"
              f"{'unchanged':>10}{'errors':>7}  reasons")
        by_name = {r["object"]: r for r in summary["results"]}
        for name in resync.plan(request):
            x = by_name.get(name, {})
            reasons = ", ".join(f"{k} {v}" for k, v in (x.get("error_reasons") or {}).items())
            print(f"  {name:<52}{x.get('status', ''):>9}{x.get('processed', 0):>10}{x.get('inserted', 0):>9}"
                  f"{x.get('updated', 0):>8}{x.get('deleted', 0):>8}{x.get('unchanged', 0):>10}{x.get('errors', 0):>7}"
                  f"  {reasons}")
    return 0 if summary["status"] == "complete" else 1


def _api(args: argparse.Namespace):
    from campus_sync.edfi.api.server import LocalEdFiApi, Options

    if getattr(args, "api_command", None) != "start":
        return LocalEdFiApi()
    if (args.key is None) != (args.secret is None):
        from campus_sync.cli import CliError

        raise CliError("give --key and --secret together")
    opts = Options(port=8765 if args.port is None else args.port, host=args.host, routes=args.routes, tenant=args.tenant,
                   school_year=args.school_year, token_ttl=args.token_ttl, token_limit=args.token_limit,
                   faults=args.faults, fault_kinds=args.fault_kinds, fault_seed=args.fault_seed,
                   retry_after=args.retry_after, fault_delay=args.fault_delay, data_standard=args.data_standard)
    return LocalEdFiApi(options=opts, dsn=args.dsn, key=args.key, secret=args.secret)


def cmd_start(args: argparse.Namespace) -> int:
    from campus_sync.cli import CliError
    from campus_sync.edfi.api.server import ApiStartError

    from campus_sync.edfi import model as edfi_model

    try:
        api = _api(args)
        edfi_model.load(data_standard=args.data_standard)  # a bad model or standard: refused here, not in the log
        info, started = api.start(timeout=args.timeout)
    except (ApiStartError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps({**info, "started": started}))
    else:
        print(("started " if started else "already running: ") + describe(info))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    api = _api(args)
    pid = api.stop()
    if args.json:
        print(json.dumps({"stopped": pid}))
    else:
        print(f"stopped the local Ed-Fi API (pid {pid})" if pid else f"the local Ed-Fi API is not running ({api.state_dir})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    api = _api(args)
    info = api.info()
    if args.json:
        print(json.dumps({"running": info is not None, **(info or {})}))
    else:
        print(("running: " + describe(info)) if info else "the local Ed-Fi API is not running")
    return 0 if info else 3


def cmd_model(args: argparse.Namespace) -> int:
    from campus_sync.cli import CliError
    from campus_sync.edfi import model as edfi_model

    try:
        m = edfi_model.load(data_standard=args.data_standard)
    except edfi_model.ModelError as exc:
        raise CliError(str(exc)) from None
    deps = m.dependencies()
    if args.json:
        print(json.dumps({"data_standard": dict(m.data_standard), "dependencies": deps,
                          "campus_resync_order": m.campus_resync_order()}))
        return 0
    resources = [r for r in m.served() if r.kind == "resource"]
    print(f"Ed-Fi resource model: Data Standard {m.data_standard.get('version')}, {len(resources)} resources, "
          f"{len(m.descriptor_values)} descriptors ({sum(len(v) for v in m.descriptor_values.values())} core values)")
    for group, names in enumerate(m.campus_resync_order(), 1):
        print(f"  resync group {group}:")
        for name in names:
            r = m.resource(name)
            print(f"    {name:<52} key: {', '.join(r.key_paths)}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """`campus-sync bench edfi`: the Ed-Fi Resync's first send, unchanged resync and 1 % change
    against a local Ed-Fi API; with --api-only, POSTs of students straight to the API per second."""
    from campus_sync.edfi import bench

    if not args.api_only:
        from campus_sync.edfi import bench_resync

        res = bench_resync.run(students=args.students, concurrency=args.concurrency, dsn=args.dsn,
                               lightbeam=getattr(args, "lightbeam", None))
        print(json.dumps(res) if args.json else bench_resync.format_report(res))
        return 0 if all(r["status"] == "complete" for r in res["rounds"]) else 1
    res = bench.run(students=args.students, concurrency=args.concurrency, dsn=args.dsn)
    print(json.dumps(res) if args.json else bench.format_report(res))
    return 0
