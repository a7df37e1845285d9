"""`campus-sync report|verify` and `history clear`: selective sync reports, Clear History, the
Verification Summary. (Selective syncs themselves run as the `campus_selective_sync` DAG.)"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
from pathlib import Path


def register(sub) -> None:
    """Add this group's subcommands to the `campus-sync` parser."""
    r = sub.add_parser("report", help="Sync Request History of a selective sync: failed and successful IDs",
                       description="Write the Sync Request History report of one selective sync request "
                                   "(see `campus-sync history` for request ids).")
    r.add_argument("batch_id", type=int, metavar="BATCH_ID")
    r.add_argument("--format", choices=["csv", "pdf"], help="default: from -o's suffix, else csv")
    r.add_argument("-o", "--output", metavar="FILE", help="default: CSV to stdout, PDF to sync-request-ID.pdf")
    r.set_defaults(func=cmd_report)

    v = sub.add_parser("verify", help="Verification Summary: district vs state accuracy per object",
                       description="Compare each district with the state, per object (current school year): "
                                   "Distinct, At District, At State, Total Errors, Accuracy %. Rows the state "
                                   "refuses by rule are not expected there. Results are stored.")
    v.add_argument("--district", action="append", metavar="D", help="district id (repeatable; default all)")
    v.add_argument("--json", action="store_true")
    v.add_argument("--heal", action="store_true",
                   help="resync mismatched PersonIdentity/Enrollment records by selective sync, then verify again")
    v.add_argument("--latest", action="store_true", help="show the last stored summary without recomputing")
    v.add_argument("--issues", action="store_true", help="also list the stored sample of mismatched records")
    v.set_defaults(func=cmd_verify)


def _user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "cli"


def _open_state():
    from campus_sync.orchestration import tasks

    return tasks.open_state()


# ------------------------------------------------------------------------------ report
def cmd_report(args: argparse.Namespace) -> int:
    from campus_sync.tools import report
    from campus_sync.tools import selective
    from campus_sync.cli import CliError

    fmt = args.format
    if fmt is None:
        suffix = Path(args.output).suffix.lower().lstrip(".") if args.output else ""
        fmt = suffix if suffix in ("csv", "pdf") else "csv"
    with _open_state() as conn:
        try:
            data = selective.batch_report(conn, args.batch_id)
        except selective.SelectiveError as exc:
            raise CliError(str(exc)) from None
    if fmt == "csv" and args.output in (None, "-"):
        sys.stdout.write(report.to_csv(data))
        return 0
    path = Path(args.output or f"sync-request-{args.batch_id}.{fmt}")
    try:
        report.write(data, fmt, path)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc}") from None
    print(f"wrote {path}: {data['object']} sync of {data['district_id']} {data['district_name']}, "
          f"{len(data['successful'])} IDs successful, {len(data['failed'])} failed")
    return 0


# ------------------------------------------------------------------------------ history clear
def _parse_before(raw: str | None):
    from campus_sync.cli import CliError

    if raw is None:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise CliError(f"--before {raw!r} is not a date: use YYYY-MM-DD") from None


def cmd_history_clear(args: argparse.Namespace) -> int:
    """`campus-sync history clear [--before DATE] [--yes]` (called from the history command)."""
    from campus_sync.tools import history
    from campus_sync.cli import CliError

    before = _parse_before(args.before)
    scope = f" made before {before.isoformat()}" if before else ""
    from campus_sync.tools import liveness

    with _open_state() as conn:
        liveness.reap(conn, liveness.airflow_metadata_state)  # a dead run's batch can be cleared
        counts = history.clear_counts(conn, before)
        if counts["requests"] == 0:
            print(f"no finished requests{scope} to clear")
            return 0
        what = (f"{counts['requests']} finished requests{scope} ({counts['object_results']} object results, "
                f"{counts['id_results']} selective ID results); synced data is not touched")
        if not args.yes:
            if not sys.stdin or not sys.stdin.isatty():
                raise CliError(f"would delete {what}; refusing without --yes (no terminal to confirm on)")
            answer = input(f"Delete {what}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing deleted")
                return 1
        done = history.clear(conn, before)
    print(f"deleted {done['requests']} requests ({done['object_results']} object results, "
          f"{done['id_results']} selective ID results)")
    return 0


# ------------------------------------------------------------------------------ verify
def _print_summary(summary: dict, title: str = "") -> None:
    end_year = summary.get("end_year")
    year = f"{end_year - 1}-{str(end_year)[2:]} " if end_year else ""
    print(f"{title}{year}Verification Results" + (f" (run {summary['run_id']})" if summary.get("run_id") else ""))
    if not summary["districts"]:
        print("  no verification results stored")
        return
    print(f"  {'District':<10} {'Name':<36} {'Overall Accuracy':>16}")
    for d in summary["districts"]:
        print(f"  {d['district_id']:<10} {d['name'][:36]:<36} {d['overall_accuracy']:>15.2f}%")
    for d in summary["districts"]:
        print(f"\nVerification Results for {d['district_id']} {d['name']}")
        print(f"  {'Object':<28} {'Accuracy':>9} {'Timestamp':<20} {'Distinct':>8} {'At District':>11} "
              f"{'At State':>8} {'Total Errors':>12}  missing/extra/different")
        for o in d["objects"]:
            ts = dt.datetime.fromisoformat(o["verified_at"]).astimezone().strftime("%m/%d/%Y %H:%M:%S")
            print(f"  {o['object']:<28} {o['accuracy']:>8.2f}% {ts:<20} {o['distinct']:>8} {o['at_district']:>11} "
                  f"{o['at_state']:>8} {o['total_errors']:>12}  {o['missing']}/{o['extra']}/{o['different']}")


def _print_issues(conn, summary: dict) -> None:
    from campus_sync.tools import verify

    for d in summary["districts"]:
        rows = verify.issues(conn, d["run_id"], d["district_id"])
        if rows:
            print(f"\nMismatched records of {d['district_id']} (first {verify.SAMPLE} per object)")
            for r in rows:
                heal = f"  -> selective key {r['heal_key']}" if r["heal_key"] is not None else ""
                print(f"  {r['object']:<28} {r['issue']:<9} {r['key_text']}{heal}")


def cmd_verify(args: argparse.Namespace) -> int:
    from campus_sync import config
    from campus_sync.tools import verify
    from campus_sync.cli import CliError

    cfg = config.load()
    try:
        districts = [cfg.district(d).id for d in args.district] if args.district else None
    except config.ConfigError as exc:
        raise CliError(str(exc)) from None
    if args.latest and args.heal:
        raise CliError("--latest shows stored results; it cannot be combined with --heal")
    healed = None
    if args.latest:
        with _open_state() as conn:
            summary = verify.latest(conn, districts, cfg=cfg)
    else:
        try:
            summary = verify.verify(districts, user=_user(), heal=args.heal, cfg=cfg)
            if args.heal:
                before = summary
                result = verify.heal(before, user=_user(), cfg=cfg)
                summary = result["summary"]
        except verify.VerifyError as exc:
            if exc.summary and exc.summary["districts"] and args.json:  # the districts that were verified
                print(json.dumps(exc.summary, indent=2, default=str))
            elif exc.summary and exc.summary["districts"]:
                _print_summary(exc.summary)
            raise CliError(str(exc)) from None
        if args.heal:
            healed = {"before_run_id": before["run_id"], "batches": result["batches"], "skipped": result["skipped"],
                      "before": {d["district_id"]: {"overall_accuracy": d["overall_accuracy"],
                                                    "total_errors": d["total_errors"]} for d in before["districts"]}}
    if args.json:
        print(json.dumps(dict(summary, healed=healed), indent=2, default=str))
        return 0
    if healed is not None:
        for d in summary["districts"]:
            b = healed["before"].get(d["district_id"], {})
            print(f"district {d['district_id']}: before heal {b.get('overall_accuracy', 0):.2f}% "
                  f"({b.get('total_errors', 0)} errors, run {healed['before_run_id']})")
        for b in healed["batches"]:
            print(f"  healed {b['district']} {b['object']}: selective sync #{b['batch_id']} {b['status']}, "
                  f"Records: {b['records']}")
        for s in healed["skipped"]:
            print(f"  not healed {s['district']} {s['object']}: {s['reason']}")
        if not healed["batches"] and not healed["skipped"]:
            print("  nothing a selective sync can repair")
        print()
    _print_summary(summary)
    unhealable = summary.get("unhealable") or {}
    for d, objs in sorted(unhealable.items()):
        print(f"\n{d}: errors a selective sync cannot repair (run a partial resync with Check Dependencies): "
              + ", ".join(f"{o} {n}" for o, n in sorted(objs.items())))
    if args.issues:
        with _open_state() as conn:
            _print_issues(conn, summary)
    return 0
