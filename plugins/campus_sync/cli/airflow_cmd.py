"""`campus-sync airflow start|stop|status`: a real Airflow for this project (`make airflow`)."""

from __future__ import annotations

import argparse
import os
import sys
import time


# How to choose what a replaced AIRFLOW__* setting asked for.
OVERRIDE_HINTS = {
    "AIRFLOW__CORE__EXECUTOR": "; choose it with AIRFLOW_EXECUTOR=CeleryExecutor (make) or --executor",
    "AIRFLOW__CELERY__BROKER_URL": "; give your broker with --broker-url",
    "AIRFLOW__API__PORT": "; move it with AIRFLOW_PORT (make) or --port",
    "AIRFLOW__API__BASE_URL": "; it follows AIRFLOW_PORT / --port and --host",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "; it follows AIRFLOW_PORT / --port",
    "AIRFLOW__API__HOST": "; choose it with --host",
}


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("airflow", help="run a real Airflow (api-server, scheduler, dag-processor, triggerer)",
                       description="Start/stop Airflow 3 in the background with this project's DAGs, plugins and "
                                   "configuration; metadata on the embedded PostgreSQL (database airflow_meta).")
    asub = a.add_subparsers(dest="airflow_command", required=True, metavar="ACTION")
    for name, func, help_ in (("start", cmd_start, "start in the background (harmless when running)"),
                              ("stop", cmd_stop, "stop every process `start` started (and their children); exit 1 if any survives"),
                              ("status", cmd_status, "which components run, the address and login")):
        p = asub.add_parser(name, help=help_)
        p.add_argument("--home", help="AIRFLOW_HOME (default .campus_sync/airflow)")
        p.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT") or 8080),
                       help="UI/REST and execution API port (default $AIRFLOW_PORT or 8080)")
        if name == "start":
            p.add_argument("--host", default="0.0.0.0", help="address the api-server binds")
            p.add_argument("--executor", choices=["LocalExecutor", "CeleryExecutor"],
                           default=os.environ.get("AIRFLOW_EXECUTOR") or "LocalExecutor")
            p.add_argument("--broker-url", help="CeleryExecutor: broker (default: start redis-server on loopback)")
            p.add_argument("--redis-port", type=int, default=int(os.environ.get("AIRFLOW_REDIS_PORT") or 6379))
            p.add_argument("--celery-workers", type=int, default=None, metavar="N",
                           help="CeleryExecutor: Celery workers to start, each with its own hostname, pid file and "
                                "log (default $AIRFLOW_CELERY_WORKERS or 1)")
            p.add_argument("--timeout", type=float, default=300, help="seconds to wait for healthy components")
        if name == "stop":
            p.add_argument("--timeout", type=float, default=15,
                           help="seconds between SIGTERM and SIGKILL (default 15)")
        p.set_defaults(func=func)


def _deployment(args: argparse.Namespace):
    from pathlib import Path

    from campus_sync.cli import CliError
    from campus_sync.orchestration.local_airflow import (LocalAirflow, celery_workers_from_env,
                                                         check_celery_workers, default_home)

    home = Path(args.home).resolve() if args.home else default_home().resolve()
    kwargs = {}
    if getattr(args, "executor", None):
        try:
            workers = (check_celery_workers(args.celery_workers, "--celery-workers")
                       if args.celery_workers is not None else celery_workers_from_env())
        except ValueError as exc:
            raise CliError(str(exc)) from None
        kwargs = {"host": args.host, "executor": args.executor, "broker_url": args.broker_url,
                  "redis_port": args.redis_port, "celery_workers": workers}
    else:  # stop/status: use what start recorded
        from campus_sync.orchestration.local_airflow import LocalAirflow as _L

        recorded = _L(home=home)._recorded()
        if recorded:
            kwargs = {"host": recorded.get("host", "0.0.0.0"), "executor": recorded.get("executor", "LocalExecutor"),
                      "celery_workers": int(recorded.get("celery_workers") or 1)}
            args.port = recorded.get("port", args.port)
    return LocalAirflow(home=home, port=args.port, **kwargs)


def cmd_start(args: argparse.Namespace) -> int:
    from campus_sync.orchestration.local_airflow import AirflowStartError
    from campus_sync.cli import CliError

    af = _deployment(args)
    t0 = time.monotonic()
    print(f"starting Airflow ({af.executor}) in {af.home} on port {af.port} ...", flush=True)
    for key in af.shell_overrides():
        print(f"note: {key} from the environment is not used: this deployment sets it"
              f"{OVERRIDE_HINTS.get(key, ' (REQUIRED_SETTINGS in campus_sync/orchestration/local_airflow.py)')}",
              file=sys.stderr, flush=True)
    try:
        started = af.start(timeout=args.timeout)
    except AirflowStartError as exc:
        raise CliError(str(exc)) from None
    if started:
        print(f"started {', '.join(af.components)} in {time.monotonic() - t0:.0f} s")
    else:
        print("already running")
    print(af.summary())
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop, then look again: exit 1 naming every process of the deployment still alive."""
    from campus_sync.orchestration.local_airflow import AirflowStopError
    from campus_sync.cli import CliError

    af = _deployment(args)
    try:
        stopped = af.stop(timeout=args.timeout)
    except AirflowStopError as exc:
        raise CliError(f"Airflow in {af.home} not stopped: {exc}") from None
    print(f"stopped {', '.join(stopped)}; nothing of it is left running" if stopped
          else f"nothing running in {af.home}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    af = _deployment(args)
    pids = af.pids()
    for component, pid in pids.items():
        print(f"{component:<16} {'running pid ' + str(pid) if pid else 'stopped'}")
    if any(pids.values()):
        print(af.summary())
    return 0 if all(pids.values()) else 3
