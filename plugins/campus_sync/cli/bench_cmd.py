"""`campus-sync bench --rows N [--json]`: engine speed against a raw COPY pipe and insert_rows."""

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
                                     "(databases campus_bench_district / campus_bench_state)")
    b.add_argument("--rows", type=_positive, default=1_000_000, help="rows to generate (default 1000000)")
    b.add_argument("--insert-rows-max", type=_positive, default=None, metavar="N",
                   help="time insert_rows on at most N rows and scale linearly (default 100000)")
    b.add_argument("--repeat", type=_positive, default=None, metavar="N",
                   help="rounds to run; every figure is the median (default 3)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from campus_sync import bench  # psycopg and, later, Airflow: only when the command runs

    res = bench.run(args.rows, args.insert_rows_max or bench.INSERT_ROWS_MAX, args.repeat or bench.REPEATS)
    print(json.dumps(res) if args.json else bench.format_table(res))
    return 0
