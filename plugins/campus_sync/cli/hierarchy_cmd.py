"""`campus-sync hierarchy validate|show` and `campus-sync plan`."""

from __future__ import annotations

import argparse
import json
import sys

from campus_sync import hierarchy
from campus_sync.hierarchy import HierarchyError


def register(sub: argparse._SubParsersAction) -> None:
    h = sub.add_parser("hierarchy", help="validate and inspect the object hierarchy")
    hsub = h.add_subparsers(dest="hierarchy_command", required=True, metavar="ACTION")
    v = hsub.add_parser("validate", help="exit 0 when the hierarchy is valid, else list every problem")
    v.add_argument("path", nargs="?", help="folder or YAML file (default: include/hierarchy)")
    v.set_defaults(func=cmd_validate)
    s = hsub.add_parser("show", help="the objects as a table, or one object in detail")
    s.add_argument("object", nargs="?")
    s.add_argument("--json", action="store_true")
    s.add_argument("--state", help="only the objects a deployment for this state syncs (e.g. NV)")
    s.set_defaults(func=cmd_show)

    p = sub.add_parser("plan", help="the ordered objects a resync request would run")
    p.add_argument("--objects", required=True, help="comma-separated object names")
    p.add_argument("--check-dependencies", action="store_true", help="add every ancestor")
    p.add_argument("--school-year", default="current", choices=hierarchy.SCHOOL_YEARS)
    p.add_argument("--state", help="only objects that apply to this state (e.g. KY)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        graph = hierarchy.compile_path(args.path) if args.path else hierarchy.load()
    except HierarchyError as exc:
        print(f"hierarchy is invalid ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for p in exc.problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(f"hierarchy is valid: {len(graph)} objects in {len(graph.stages())} stages")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    graph = hierarchy.load()
    names = [graph.resolve(args.object)] if args.object else list(graph.names)
    if args.state:
        names = [n for n in names if graph.spec(n).applies_to(args.state)]
        if not names:
            print(f"no object applies to state {args.state.upper()}" if not args.object else
                  f"{args.object} does not apply to state {args.state.upper()}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(graph.to_json(names), indent=2))
        return 0
    if args.object:
        spec = graph.spec(names[0])
        years = ", ".join(spec.school_years) if spec.school_year_scoped else "not tied to a school year"
        lines = [
            f"{spec.name}: {spec.description}",
            f"  declared in   {spec.source}",
            f"  parents       {', '.join(spec.parents) or '(none)'}",
            "  ancestors     " + (" -> ".join(graph.ancestors(spec.name)) or "(none)"),
            f"  children      {', '.join(graph.children(spec.name)) or '(none)'}",
            f"  descendants   {', '.join(sorted(graph.descendants(spec.name))) or '(none)'}",
            f"  key           {', '.join(spec.key)}",
            f"  school years  {years}",
            f"  selective key {spec.selective_key or '-'}",
            f"  states        {', '.join(spec.states) or 'every state'}"
            + (f" except {', '.join(spec.not_states)}" if spec.not_states else ""),
            f"  extract SQL   include/sql/{spec.sql}",
        ]
        if spec.foreign_keys:
            fks = ", ".join(f"{f.column} -> {f.target}" for f in spec.foreign_keys)
            lines.append(f"  foreign keys  {fks}")
        print("\n".join(lines))
        return 0
    width = max(len(n) for n in names)
    print(f"{'stage':>5}  {'object':<{width}}  {'parents':<40}  {'years':<22}  states")
    for n in names:
        spec = graph.spec(n)
        years = ",".join(spec.school_years) or "-"
        states = ",".join(spec.states) or "all"
        print(f"{graph.stage(n):>5}  {n:<{width}}  {', '.join(spec.parents) or '-':<40}  {years:<22}  {states}")
    print(f"\n{len(names)} objects" + (f" synced for state {args.state.upper()}" if args.state else ""))
    _refresh_note(names)
    return 0


def _refresh_note(names) -> None:
    """Campus's attendance resync: the district's aggregation refresh runs before AttDayAggregation (not an object)."""
    from campus_sync.tools import attendance

    if attendance.in_plan(names):
        print(f"+ {attendance.REFRESH}: each district's attendance aggregation refresh runs first, "
              f"before {attendance.AGGREGATE} (a task, not an object; param {attendance.PARAM})")


def cmd_plan(args: argparse.Namespace) -> int:
    graph = hierarchy.load()
    objects = [o for o in (x.strip() for x in args.objects.split(",")) if o]
    plan = graph.plan(objects, args.check_dependencies, args.school_year, args.state)
    if args.json:
        print(json.dumps(plan.to_json()))
        return 0
    for i, stage in enumerate(plan.stages):
        marks = [f"{n}{' (dependency)' if n in plan.added else ''}" for n in stage]
        print(f"stage {i}: {', '.join(marks)}")
    print(f"{len(plan.objects)} objects, {plan.school_year} school year"
          + (f", state {plan.state}" if plan.state else ""))
    _refresh_note(plan.objects)
    return 0
