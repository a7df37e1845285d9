"""`campus-sync`: the command line data engineers use to inspect and run the package.

Each command group lives in its own module and registers itself on the parser; heavy imports
(psycopg, Airflow) happen inside the commands that need them so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from campus_sync.cli import airflow_cmd, alerts_cmd, bench_cmd, edfi_cmd, hierarchy_cmd, ops_cmd, selective_cmd

# Errors that describe bad input or configuration, printed without a traceback (by name, so
# `--help` need not import the modules that define them).
USER_ERRORS = frozenset({"ConfigError", "ConnectionConfigError", "RequestError", "SyncError", "EmptySourceError",
                         "MassDeleteError", "VerifyError"})

GROUPS = [hierarchy_cmd, ops_cmd, alerts_cmd, selective_cmd, bench_cmd, airflow_cmd, edfi_cmd]


class CliError(Exception):
    """A user-facing failure: printed without a traceback, exit code 1 (or `code`)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="campus-sync",
        description="Keep the state education database in step with district databases.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from campus_sync.hierarchy import HierarchyError, UnknownObjectError
    from campus_sync.hierarchy.errors import SelectionError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CliError,) as exc:
        print(f"campus-sync: {exc}", file=sys.stderr)
        return exc.code
    except (HierarchyError, UnknownObjectError, SelectionError) as exc:
        print(f"campus-sync: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # user errors named by the package: no traceback
        if any(c.__name__ in USER_ERRORS for c in type(exc).__mro__):
            print(f"campus-sync: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
