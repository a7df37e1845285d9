"""`campus-sync alerts`: the Process Alerts inbox (e.g. "State Resync Requested")."""

from __future__ import annotations

import argparse
import datetime as dt
import json


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's subcommands to the `campus-sync` parser."""
    a = sub.add_parser("alerts", help="process alerts (State Resync Requested), newest first")
    a.add_argument("--district", default=None, help="only this district's alerts (a configured district id)")
    a.add_argument("--limit", type=int, default=100)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_alerts)


def cmd_alerts(args: argparse.Namespace) -> int:
    from campus_sync import config
    from campus_sync.tools import alerts
    from campus_sync.orchestration import tasks
    from campus_sync.cli import CliError

    cfg = config.load()
    if args.district is not None:
        try:
            cfg.district(args.district)
        except config.ConfigError as exc:
            raise CliError(str(exc)) from None
    if args.limit < 1:
        raise CliError("--limit must be at least 1")
    with tasks.open_state(cfg) as conn:
        rows = alerts.list_alerts(conn, args.district, limit=args.limit)
    if args.json:
        doc = {"alerts": [{k: (r[k].isoformat() if isinstance(r[k], dt.datetime) else r[k])
                           for k in alerts.FIELDS} for r in rows]}
        print(json.dumps(doc, indent=2))
        return 0
    if not rows:
        print("no process alerts" + (f" for district {args.district}" if args.district else ""))
    for r in rows:
        print(f"#{r['id']:<5} {r['requested_at'].strftime('%m/%d/%Y %H:%M:%S')}  district {r['district']:<6} "
              f"{r['category']} / {r['name']}: {r['message']}")
    return 0
