"""Run the local Ed-Fi API in the background: `campus-sync edfi api start|stop|status`, tests, benches.

One `LocalEdFiApi` is one background server: a uvicorn process (its own process group) serving
`EdFiApi`, with its files in a state directory (default `$CAMPUS_SYNC_HOME/edfi-api/`): `api.pid`,
`api.json` (port, URLs, client key and secret; mode 0600) and `api.log`. `stop` signals exactly the
process `start` recorded, after checking that the pid still runs this module. A second `start`
with the same options finds the server running and changes nothing.

Data lives in PostgreSQL: the embedded server's `edfi_local` database unless a DSN is given. The
DSN reaches the server process through its environment, never its command line.

`python -m campus_sync.edfi.api.server run ...` is the server process itself.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from campus_sync.orchestration.local_airflow import _alive, free_port  # one copy of the process helpers

DEFAULT_PORT = 8765
DATABASE = "edfi_local"
DSN_ENV = "CAMPUS_SYNC_EDFI_DSN"
MODULE = "campus_sync.edfi.api.server"


class ApiStartError(RuntimeError):
    """The server did not come up (or cannot): the message says why, with the log's tail."""


def default_state_dir() -> Path:
    from campus_sync import paths

    return paths.home() / "edfi-api"


@dataclass
class Options:
    """What the server runs with; `start` compares them with a running server's."""

    port: int = DEFAULT_PORT
    host: str = "127.0.0.1"
    routes: str = "shared"
    tenant: str = "district"
    school_year: int | None = None
    token_ttl: int = 1800
    token_limit: int = 15
    faults: float = 0.0
    fault_kinds: tuple[str, ...] = ("429", "503", "reset", "slow", "401")
    fault_seed: int | None = None
    retry_after: int = 1
    fault_delay: float = 2.0
    pool_size: int = 4
    data_standard: str | None = None  # None: the model's default (5.2)

    def __post_init__(self) -> None:
        """Refuse bad options here, before a server process is spawned to fail on them."""
        from campus_sync.edfi.api.app import Settings
        from campus_sync.edfi.api.faults import FaultPlan

        FaultPlan(self.faults, tuple(self.fault_kinds), self.fault_seed, self.retry_after, self.fault_delay)
        Settings(routes=self.routes, tenant=self.tenant, token_ttl=self.token_ttl)
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0 (any free port) to 65535, got {self.port}")
        if self.pool_size < 1:
            raise ValueError("pool_size must be at least 1")

    def argv(self) -> list[str]:
        out = ["--port", str(self.port), "--host", self.host, "--routes", self.routes, "--tenant", self.tenant,
               "--token-ttl", str(self.token_ttl), "--token-limit", str(self.token_limit), "--faults", str(self.faults),
               "--fault-kinds", ",".join(self.fault_kinds), "--retry-after", str(self.retry_after),
               "--fault-delay", str(self.fault_delay), "--pool-size", str(self.pool_size)]
        if self.school_year is not None:
            out += ["--school-year", str(self.school_year)]
        if self.fault_seed is not None:
            out += ["--fault-seed", str(self.fault_seed)]
        if self.data_standard is not None:
            out += ["--data-standard", self.data_standard]
        return out

    def comparable(self) -> dict:
        d = asdict(self)
        d["fault_kinds"] = list(self.fault_kinds)
        return d


@dataclass
class LocalEdFiApi:
    """One background local Ed-Fi API (see the module docstring)."""

    options: Options = field(default_factory=Options)
    state_dir: Path = field(default_factory=default_state_dir)
    dsn: str | None = None  # default: the embedded server's edfi_local database
    key: str | None = None
    secret: str | None = None

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "api.pid"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "api.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "api.log"

    @contextlib.contextmanager
    def _locked(self):
        """One start or stop at a time per state directory (two racing starts would both spawn)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "api.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # ------------------------------------------------------------------ status
    def pid(self) -> int | None:
        """The recorded pid when it still runs this server, else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _runs_server(pid) else None

    def recorded(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def info(self) -> dict | None:
        """base_url, oauth_url, key, secret, port (and routes, data_url, pid) of the running server."""
        pid = self.pid()
        state = self.recorded()
        if pid is None or state.get("pid") != pid or "key" not in state:
            return None
        return {k: state[k] for k in ("base_url", "oauth_url", "key", "secret", "port", "routes", "data_url", "pid",
                                      "data_standard") if k in state}

    # ------------------------------------------------------------------ start / stop
    def start(self, timeout: float = 60) -> tuple[dict, bool]:
        """Start the server unless it already runs with the same options; (info, started)."""
        with self._locked():
            return self._start(timeout)

    def _start(self, timeout: float) -> tuple[dict, bool]:
        running = self.info()
        dsn = self.dsn or _embedded_dsn()
        if running is not None:
            recorded = self.recorded()
            wanted = {**self.options.comparable(), "dsn": _fingerprint(dsn)}
            had = {**recorded.get("options", {}), "dsn": recorded.get("dsn")}
            if self.options.port == 0:
                wanted["port"] = had.get("port")
            if self.key and self.secret and (self.key, self.secret) != (running["key"], running["secret"]):
                wanted["key"] = "(given)"
            if had != wanted:
                changed = sorted(k for k in wanted if had.get(k) != wanted[k])
                raise ApiStartError(
                    f"the local Ed-Fi API is already running (pid {running['pid']}, port {running['port']}) with other "
                    f"options ({', '.join(changed)}); stop it first: campus-sync edfi api stop")
            return running, False
        if self.pid_file.exists() and self.pid() is None:
            self.pid_file.unlink(missing_ok=True)
        _check_database(dsn)
        port = self.options.port or free_port(self.options.host)
        _check_port_free(self.options.host, port)
        opts = Options(**{**asdict(self.options), "port": port})
        env = dict(os.environ)
        env[DSN_ENV] = dsn
        plugins = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = plugins + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        if self.key and self.secret:
            env["CAMPUS_SYNC_EDFI_KEY"], env["CAMPUS_SYNC_EDFI_SECRET"] = self.key, self.secret
        self.state_file.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", MODULE, "run", "--state-file", str(self.state_file), *opts.argv()]
        with open(self.log_file, "ab") as log:
            log.write(f"\n---- {time.strftime('%Y-%m-%d %H:%M:%S')} starting the local Ed-Fi API on port {port}\n".encode())
            log.flush()
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=self.state_dir)
        self.pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise ApiStartError(f"the local Ed-Fi API exited (code {proc.returncode}); see {self.log_file}:\n"
                                    f"{_tail(self.log_file)}")
            state = self.recorded()
            if state.get("pid") == proc.pid and _healthy(port):
                return self.info(), True
            time.sleep(0.1)
        self._stop()
        raise ApiStartError(f"the local Ed-Fi API did not answer within {timeout:.0f} s; see {self.log_file}:\n"
                            f"{_tail(self.log_file)}")

    def stop(self, timeout: float = 15) -> int | None:
        """Stop the recorded server (SIGTERM, then SIGKILL after `timeout`); its pid, or None."""
        with self._locked():
            return self._stop(timeout)

    def _stop(self, timeout: float = 15) -> int | None:
        pid = self.pid()
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
                _reap(pid)
            if _alive(pid):
                _signal_group(pid, signal.SIGKILL)
                time.sleep(0.2)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)
        return pid


# ---------------------------------------------------------------------- process helpers
def _check_database(dsn: str) -> None:
    import psycopg

    try:
        psycopg.connect(dsn, connect_timeout=10).close()
    except psycopg.Error as exc:
        raise ApiStartError(f"the local Ed-Fi API cannot use its database: {str(exc).strip()}") from None


def _fingerprint(dsn: str) -> str:
    """Which database a server uses, recorded without its password."""
    return hashlib.sha256(dsn.encode()).hexdigest()[:16]


def _embedded_dsn() -> str:
    from campus_sync import db

    return db.embedded_dsn(DATABASE)


def _runs_server(pid: int) -> bool:
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return True  # no /proc: trust the pid file
    return MODULE in cmdline


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the server leads its own process group (start_new_session)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise ApiStartError(f"port {port} is in use; choose another with --port") from None


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def urls(options: Options, port: int, school_year: int) -> dict:
    """base_url, oauth_url and data_url a client uses for these options."""
    root = f"http://{'127.0.0.1' if options.host in ('0.0.0.0', '::', '') else options.host}:{port}"
    if options.routes == "tenant-year":
        return {"base_url": f"{root}/{options.tenant}/{school_year}", "oauth_url": f"{root}/{options.tenant}/oauth/token",
                "data_url": f"{root}/{options.tenant}/{school_year}/data/v3"}
    if options.routes == "context-year":
        return {"base_url": f"{root}/{school_year}", "oauth_url": f"{root}/oauth/token",
                "data_url": f"{root}/{school_year}/data/v3"}
    if options.routes == "year":
        return {"base_url": root, "oauth_url": f"{root}/oauth/token", "data_url": f"{root}/data/v3/{school_year}"}
    return {"base_url": root, "oauth_url": f"{root}/oauth/token", "data_url": f"{root}/data/v3"}


# ---------------------------------------------------------------------- the server process
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="serve in the foreground (what `campus-sync edfi api start` runs)")
    r.add_argument("--state-file", type=Path, help="write port, URLs, key and secret here once serving")
    r.add_argument("--port", type=int, default=DEFAULT_PORT)
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--routes", default="shared")
    r.add_argument("--tenant", default="district")
    r.add_argument("--school-year", type=int)
    r.add_argument("--token-ttl", type=int, default=1800)
    r.add_argument("--token-limit", type=int, default=15)
    r.add_argument("--faults", type=float, default=0.0)
    r.add_argument("--fault-kinds", default="429,503,reset,slow,401")
    r.add_argument("--fault-seed", type=int)
    r.add_argument("--retry-after", type=int, default=1)
    r.add_argument("--fault-delay", type=float, default=2.0)
    r.add_argument("--pool-size", type=int, default=4)
    r.add_argument("--data-standard", default=None)
    return p


def run(argv: list[str] | None = None) -> int:
    """The server process: create the schema, serve until SIGTERM."""
    args = _parser().parse_args(argv)
    import asyncio

    import uvicorn

    from campus_sync.edfi import model as edfi_model
    from campus_sync.edfi.api.app import EdFiApi, Settings, current_school_year
    from campus_sync.edfi.api.faults import FaultPlan, protocol_class
    from campus_sync.edfi.api.storage import ensure_schema

    dsn = os.environ.get(DSN_ENV) or _embedded_dsn()
    ensure_schema(dsn)
    kinds = tuple(k.strip() for k in args.fault_kinds.split(",") if k.strip())
    settings = Settings(routes=args.routes, tenant=args.tenant, school_year=args.school_year, token_ttl=args.token_ttl,
                        token_limit=args.token_limit, pool_size=args.pool_size,
                        faults=FaultPlan(args.faults, kinds, args.fault_seed, args.retry_after, args.fault_delay),
                        key=os.environ.get("CAMPUS_SYNC_EDFI_KEY"), secret=os.environ.get("CAMPUS_SYNC_EDFI_SECRET"))
    app = EdFiApi(edfi_model.load(data_standard=args.data_standard), dsn, settings)
    options = Options(port=args.port, host=args.host, routes=args.routes, tenant=args.tenant, school_year=args.school_year,
                      token_ttl=args.token_ttl, token_limit=args.token_limit, faults=args.faults, fault_kinds=kinds,
                      fault_seed=args.fault_seed, retry_after=args.retry_after, fault_delay=args.fault_delay,
                      pool_size=args.pool_size, data_standard=args.data_standard)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    config = uvicorn.Config(app, host=args.host, port=args.port, http=protocol_class(), loop=loop, lifespan="on",
                            access_log=False, log_level="warning", timeout_keep_alive=30, backlog=2048)
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.05)
        if args.state_file is not None and app.credentials is not None:
            key, secret = app.credentials
            state = {"pid": os.getpid(), "port": args.port, "routes": args.routes, "key": key, "secret": secret,
                     "data_standard": app.model.data_standard.get("version"),
                     "options": options.comparable(), "dsn": _fingerprint(dsn),
                     **urls(options, args.port, args.school_year or current_school_year())}
            tmp = args.state_file.with_suffix(".tmp")
            tmp.touch(mode=0o600)
            tmp.write_text(json.dumps(state))
            tmp.replace(args.state_file)
        await task

    asyncio.run(serve()) if loop == "asyncio" else _run_uvloop(serve)
    return 0 if server.started else 1


def _run_uvloop(main) -> None:
    import uvloop

    uvloop.run(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(sys.argv[1:]))
