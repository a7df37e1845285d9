"""Run a real Airflow 3 on this machine: `make airflow`, `campus-sync airflow start|stop|status`, tests.

One `LocalAirflow` is one Airflow deployment: an AIRFLOW_HOME (default `.campus_sync/airflow`),
its metadata database on the project's embedded PostgreSQL (database `airflow_meta`, never
SQLite), and the components started as background processes, each in its own session and process
group with a pid file under `$AIRFLOW_HOME/run/` and its output in
`$AIRFLOW_HOME/logs/<component>.log`, so `stop` ends exactly what `start` started.

A component's processes do not all stay in its process group (a task's supervisor moves the task
to a group of its own, BashOperator starts a session of its own), and a component killed with -9
leaves its children running (the scheduler's log server and LocalExecutor workers). So each
component is started with `CAMPUS_SYNC_AIRFLOW_COMPONENT=<home>::<component>` in its environment,
which every descendant inherits: `stop`, and `start` before it replaces a dead component, find
that component's processes by the tag, by the recorded process group and session, and as
descendants of those, and end them all. The embedded PostgreSQL is never among them, even when
a component happened to start it. Every component gets the same environment: this
project's dags/ and plugins/, `CAMPUS_SYNC_CONFIG`, the API port (UI, REST and the execution API
move together) and secrets kept in `$AIRFLOW_HOME/campus_sync_secrets.json` so JWTs and
encrypted connections survive a restart.

LocalExecutor runs api-server, scheduler, dag-processor and triggerer. CeleryExecutor adds
`celery_workers` Celery workers (apache-airflow-providers-celery; `--celery-workers`, or
AIRFLOW_CELERY_WORKERS for `make airflow`) and, unless a broker URL is given, starts Debian's
`redis-server` on loopback as one more component. The workers are components of their own
(`celery-worker`, `celery-worker-2`, ...: own pid file, log and Celery hostname); the first serves
the task logs on the worker log port, the others share its log folder and skip their log server.

Plain Python, no Airflow import: the components are `airflow` CLI processes.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from campus_sync import db, paths

META_DB = "airflow_meta"
ADMIN = "admin"
BASE_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
WORKER = "celery-worker"  # the first Celery worker; the next ones are celery-worker-2, celery-worker-3, ...
KNOWN_COMPONENTS = ("redis", WORKER, *BASE_COMPONENTS)  # start order; stop goes in reverse
MAX_CELERY_WORKERS = 16
CELERY_WORKERS_ENV = "AIRFLOW_CELERY_WORKERS"
_WORKER_RE = re.compile(r"celery-worker(-([2-9]|[1-9][0-9]+))?")
TAG = "CAMPUS_SYNC_AIRFLOW_COMPONENT"  # <home>::<component>, inherited by every descendant
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"

# The settings that make this deployment what it is; an exported AIRFLOW__* of the same name is
# replaced (and `start` says so). Every other AIRFLOW__* the user exports reaches every component.
REQUIRED_SETTINGS = frozenset({
    # this project's DAGs and plugins (the Resync State Data page)
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__PLUGINS_FOLDER",
    # the metadata database on the embedded PostgreSQL, migrated by `start`: a shell-wide one may
    # be another Airflow's, which `airflow db migrate` must never touch
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    # the executor decides which components `start` runs (AIRFLOW_EXECUTOR / --executor), and a
    # Celery broker whether it starts redis-server (--broker-url)
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CELERY__BROKER_URL",
    # UI, REST and execution API on the port and host `start` health-checks (AIRFLOW_PORT / --port,
    # --host); base_url's path would move the health endpoint
    "AIRFLOW__API__PORT",
    "AIRFLOW__API__HOST",
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    # the simple auth manager and its password file, where `start` reads the logins it prints
    "AIRFLOW__CORE__AUTH_MANAGER",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
})
DEFAULT_USERS = f"{ADMIN}:admin"
LOCAL_SETTINGS_MARK = "# Written by `campus-sync airflow start` (campus_sync/orchestration/local_airflow.py); rewritten on start."


class AirflowStartError(RuntimeError):
    """A component did not come up; the message names it and the tail of its log."""


class AirflowStopError(RuntimeError):
    """Processes of the deployment outlived SIGKILL (e.g. a task run as another user): named here."""

    def __init__(self, survivors: dict[int, str], stopped: list[str]):
        self.survivors = survivors
        self.stopped = stopped
        listing = "; ".join(f"pid {pid} ({what})" for pid, what in sorted(survivors.items()))
        super().__init__(f"{len(survivors)} process(es) still running after SIGKILL: {listing}")


def worker_names(count: int) -> tuple[str, ...]:
    """The component names of `count` Celery workers: celery-worker, celery-worker-2, ..."""
    return (WORKER,) + tuple(f"{WORKER}-{i}" for i in range(2, count + 1))


def _is_worker(component: str) -> bool:
    return _WORKER_RE.fullmatch(component) is not None


def _worker_index(component: str) -> int:
    return 1 if component == WORKER else int(component.rsplit("-", 1)[1])


def check_celery_workers(count: object, where: str = "celery_workers") -> int:
    """`count` as a number of Celery workers (1 to MAX_CELERY_WORKERS), else an error naming `where`."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_CELERY_WORKERS:
        raise ValueError(f"{where} must be a whole number from 1 to {MAX_CELERY_WORKERS}, not {count!r}")
    return count


def celery_workers_from_env() -> int:
    """AIRFLOW_CELERY_WORKERS (`make airflow AIRFLOW_EXECUTOR=CeleryExecutor AIRFLOW_CELERY_WORKERS=2`), default 1."""
    raw = os.environ.get(CELERY_WORKERS_ENV, "").strip()
    if not raw:
        return 1
    try:
        value: object = int(raw)
    except ValueError:
        value = raw
    return check_celery_workers(value, f"{CELERY_WORKERS_ENV}={raw}")


def default_home() -> Path:
    """`.campus_sync/airflow` (under $CAMPUS_SYNC_HOME): never a shell-wide AIRFLOW_HOME of another Airflow."""
    return db.home() / "airflow"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie or a recycled pid is not our component
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@dataclass
class LocalAirflow:
    """One local Airflow deployment (see the module docstring)."""

    home: Path = field(default_factory=default_home)
    port: int = 8080
    host: str = "0.0.0.0"
    executor: str = "LocalExecutor"  # or CeleryExecutor
    broker_url: str | None = None  # Celery: None starts redis-server on `redis_port`
    redis_port: int = 6379
    meta_db: str = META_DB
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. AIRFLOW_CONN_* for every component
    celery_concurrency: int = 4  # task slots per Celery worker
    celery_workers: int = 1  # Celery workers started (CeleryExecutor only)
    log_ports: tuple[int, int] | None = None  # worker/triggerer log servers; default port+1, port+2
    triggerer: bool = True  # no deferrable tasks here; a test may leave it out to save CPU

    # ------------------------------------------------------------------ layout
    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "deployment.json"

    @property
    def password_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    @property
    def base_url(self) -> str:
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def celery(self) -> bool:
        return self.executor == "CeleryExecutor"

    def __post_init__(self) -> None:
        check_celery_workers(self.celery_workers)

    @property
    def components(self) -> tuple[str, ...]:
        extra: tuple[str, ...] = ()
        if self.celery:
            extra = worker_names(self.celery_workers) if self.broker_url else ("redis", *worker_names(self.celery_workers))
        return extra + tuple(c for c in BASE_COMPONENTS if self.triggerer or c != "triggerer")

    def known_components(self) -> tuple[str, ...]:
        """Every component this home may have running, in start order: the fixed ones plus each
        Celery worker this deployment asks for, the last start recorded, or a pid file names (a
        deployment started with more workers than this object asks for is still stopped whole)."""
        workers = set(worker_names(self.celery_workers))
        workers.update(c for c in self._recorded().get("components", []) if _is_worker(c))
        if self.run_dir.is_dir():
            workers.update(f.stem for f in self.run_dir.glob(f"{WORKER}*.pid") if _is_worker(f.stem))
        return ("redis", *sorted(workers, key=_worker_index), *BASE_COMPONENTS)

    def pid_file(self, component: str) -> Path:
        return self.run_dir / f"{component}.pid"

    def log_file(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    # ------------------------------------------------------------------ environment
    def _secrets(self) -> dict[str, str]:
        """Secrets shared by every component, generated once per AIRFLOW_HOME."""
        path = self.home / "campus_sync_secrets.json"
        self.home.mkdir(parents=True, exist_ok=True)
        if path.exists():
            return json.loads(path.read_text())
        from cryptography.fernet import Fernet  # an Airflow dependency

        values = {"jwt_secret": secrets.token_urlsafe(48), "secret_key": secrets.token_urlsafe(32),
                  "fernet_key": Fernet.generate_key().decode()}
        path.touch(mode=0o600)
        path.write_text(json.dumps(values))
        return values

    def metadata_uri(self) -> str:
        """SQLAlchemy URI of the metadata database on the embedded server (created when missing)."""
        import psycopg
        from psycopg import sql

        server = db.embedded_server()
        with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.meta_db,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.meta_db)))
                for marker in self.home.glob(f".migrated-{self.meta_db}-*"):  # a new database: migrate again
                    marker.unlink()
        return server.get_uri(self.meta_db).replace("postgresql://", "postgresql+psycopg2://", 1)

    def environment(self) -> dict[str, str]:
        """The environment every component runs with: the caller's, our REQUIRED_SETTINGS over
        it, our defaults under it (an exported AIRFLOW__* wins), then `extra_env`."""
        db.ensure_runtime_dir()  # the same runtime dir (pgserver's lock) as every other process here
        keys = self._secrets()
        meta = self.metadata_uri()
        env = dict(os.environ)
        env.update(self._required(meta))
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "CAMPUS_SYNC_HOME": str(db.home()),
            "CAMPUS_SYNC_CONFIG": str(_config_path()),
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",  # a native crash leaves its traceback in the component's log
        })
        defaults = {
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": DEFAULT_USERS,
            # generated once per AIRFLOW_HOME: JWTs and encrypted connections survive a restart
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.log_dir),
            # Airflow's defaults (8793/8794) collide with any other Airflow on the machine.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.port + 1),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.port + 2),
            # sized for a small machine
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__PARALLELISM": "8",
            # A task's calls to the execution API time out after 5 s by default: far too short on a
            # busy 2-core machine (the first `run` call of a task then fails before the task starts).
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
        if self.log_ports:  # asked for explicitly (tests on free ports)
            env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(self.log_ports[0])
            env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(self.log_ports[1])
        if self.celery:
            defaults["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + meta.replace("+psycopg2", "", 1)
            defaults["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(self.celery_concurrency)
        for key, value in defaults.items():
            env.setdefault(key, value)
        env.pop("AIRFLOW_CONFIG", None)  # a shell-wide airflow.cfg belongs to another Airflow
        env.update(self.extra_env)
        return env

    def _required(self, meta: str) -> dict[str, str]:
        """The REQUIRED_SETTINGS' values for this deployment."""
        values = {
            "AIRFLOW__CORE__DAGS_FOLDER": str(paths.PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(paths.PROJECT_ROOT / "plugins"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta,
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": self.host,
            "AIRFLOW__API__BASE_URL": self.base_url + "/",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.password_file),
        }
        if self.celery:
            values["AIRFLOW__CELERY__BROKER_URL"] = self.broker_url or f"redis://127.0.0.1:{self.redis_port}/0"
        assert set(values) <= REQUIRED_SETTINGS
        return values

    def shell_overrides(self) -> list[str]:
        """REQUIRED_SETTINGS the caller's environment sets to something else (replaced)."""
        values = self._required(self.metadata_uri())
        return sorted(key for key, value in values.items() if key in os.environ and os.environ[key] != value)

    def command(self, component: str) -> list[str]:
        airflow = str(Path(sys.executable).with_name("airflow"))
        if component == "api-server":
            return [airflow, "api-server", "--port", str(self.port), "--host", self.host]
        if _is_worker(component):
            cmd = [airflow, "celery", "worker", "--concurrency", str(self.celery_concurrency),
                   "--celery-hostname", f"{component}@%h"]
            # one log server per machine: the workers share the log folder, the first serves it
            return cmd if component == WORKER else cmd + ["--skip-serve-logs"]
        if component == "redis":
            exe = shutil.which("redis-server")
            if not exe:
                raise AirflowStartError("CeleryExecutor needs redis-server (apt-get install -y redis-server) "
                                        "or a --broker-url")
            return [exe, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(self.run_dir)]
        return [airflow, component]

    # ------------------------------------------------------------------ status
    def pids(self) -> dict[str, int | None]:
        """Component → pid when its pid file names a live process, else None."""
        out: dict[str, int | None] = {}
        for component in self.components:
            try:
                pid = int(self.pid_file(component).read_text().strip())
            except (OSError, ValueError):
                pid = None
            out[component] = pid if pid and _alive(pid) and _is_component(pid, self._tag(component)) else None
        return out

    def running(self) -> bool:
        return all(self.pids().values())

    def health(self, timeout: float = 10) -> dict | None:
        return self._get("/api/v2/monitor/health", timeout)

    def _get(self, path: str, timeout: float) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as r:
                return json.loads(r.read())
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def admin_password(self) -> str | None:
        try:
            return json.loads(self.password_file.read_text()).get(ADMIN)
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------------ start / stop
    def migrate(self, env: dict[str, str]) -> None:
        """`airflow db migrate` once per metadata database and Airflow version."""
        marker = self.home / f".migrated-{self.meta_db}-{_airflow_version()}"
        if marker.exists():
            return
        log = self.log_file("db-migrate")
        with open(log, "ab") as out:
            proc = subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
                                  env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if proc.returncode:
            raise AirflowStartError(f"airflow db migrate failed (exit {proc.returncode}); see {log}:\n{_tail(log)}")
        marker.touch()

    def ensure_state_pool(self, env: dict[str, str]) -> None:
        """The Airflow pool the weekly resync's object tasks run in (config `state_pool`, size
        `state_pool_slots`): a task in a pool that does not exist is never scheduled. Set once per
        metadata database and size (a new metadata database sets it again)."""
        from campus_sync import config

        cfg = config.parse(Path(env["CAMPUS_SYNC_CONFIG"]))
        marker = self.home / f".migrated-{self.meta_db}-pool-{cfg.state_pool}-{cfg.state_pool_slots}"
        if marker.exists():
            return
        log = self.log_file("db-migrate")
        with open(log, "ab") as out:
            proc = subprocess.run([str(Path(sys.executable).with_name("airflow")), "pools", "set", cfg.state_pool,
                                   str(cfg.state_pool_slots), "campus-state-sync: object tasks of the weekly resync"],
                                  env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if proc.returncode:
            raise AirflowStartError(f"airflow pools set failed (exit {proc.returncode}); see {log}:\n{_tail(log)}")
        marker.touch()

    def write_local_settings(self) -> None:
        """`$AIRFLOW_HOME/config/airflow_local_settings.py` with the deployment's cluster policy
        (`campus_sync.orchestration.airflow_policy`: manual DAGs created unpaused, the weekly one paused).
        A file the user wrote there is left alone (then the policy is theirs to import)."""
        path = self.home / "config" / "airflow_local_settings.py"
        text = (f"{LOCAL_SETTINGS_MARK}\n"
                "from campus_sync.orchestration.airflow_policy import dag_policy  # noqa: F401 - found by Airflow\n")
        if path.exists() and not path.read_text().startswith(LOCAL_SETTINGS_MARK):
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def _exit_status(self, component: str) -> str:
        """'exit code N' / 'killed by SIGX' when the dead component was our child, else 'status unknown'."""
        try:
            pid = int(self.pid_file(component).read_text().strip())
            reaped, status = os.waitpid(pid, os.WNOHANG)
        except (OSError, ValueError):
            return "status unknown"
        if not reaped:
            return "status unknown"
        if os.WIFSIGNALED(status):
            return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
        return f"exit code {os.WEXITSTATUS(status)}"

    def _spawn(self, component: str, env: dict[str, str]) -> int:
        log = self.log_file(component)
        with open(log, "ab") as out:
            out.write(f"\n---- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {component}\n".encode())
            out.flush()
            proc = subprocess.Popen(self.command(component), env={**env, TAG: self._tag(component)}, cwd=self.home,
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.pid_file(component).write_text(f"{proc.pid}\n")
        return proc.pid

    def start(self, timeout: float = 240) -> bool:
        """Start whatever is not running; wait until healthy. False when all already ran."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        previous = self._recorded()
        pids = self.pids()
        if previous and any(pids.values()) and (previous.get("port") != self.port
                                                 or previous.get("executor") != self.executor):
            raise AirflowStartError(
                f"Airflow in {self.home} is already running on port {previous.get('port')} with "
                f"{previous.get('executor')}; stop it first (make airflow-stop)")
        if all(pids.values()):
            self.wait_healthy(timeout)
            return False
        for component in self.known_components():  # a dead component's children would hold its ports
            if not pids.get(component):
                self._stop_leftovers(component)
        if not any(pids.values()):
            _check_port_free(self.port)
            if self.celery and not self.broker_url:
                _check_port_free(self.redis_port, "127.0.0.1")
        env = self.environment()
        self.write_local_settings()
        self.migrate(env)
        self.ensure_state_pool(env)
        self.state_file.write_text(json.dumps({
            "port": self.port, "executor": self.executor, "host": self.host, "components": list(self.components),
            "celery_workers": self.celery_workers, "celery_concurrency": self.celery_concurrency,
            "users": env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", ""),
            "all_admins": env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "").lower() in ("true", "1")}))
        for component in self.components:
            if not pids[component]:
                self._spawn(component, env)
                if component == "redis":
                    _wait_port(self.redis_port, 20, "redis-server", self.log_file("redis"))
        self.wait_healthy(timeout, restarts=2)
        return True

    def wait_healthy(self, timeout: float = 240, restarts: int = 0) -> dict:
        """Until every component reports healthy and Airflow has written the password file
        (unless simple_auth_manager_all_admins needs none).

        A component that dies while the deployment comes up is started again up to `restarts`
        times (what a supervisor's restart policy does; on a loaded 2-core machine a component
        has been seen to die at start-up without a word), each death written to its log with the
        exit status; one more death is an error naming the component and that status.
        """
        deadline = time.monotonic() + timeout
        health: dict | None = None
        left = {component: restarts for component in self.components}
        while time.monotonic() < deadline:
            dead = [component for component, pid in self.pids().items() if pid is None]
            for component in dead:
                log = self.log_file(component)
                status = self._exit_status(component)
                with open(log, "a") as out:
                    out.write(f"\n---- {time.strftime('%Y-%m-%d %H:%M:%S')} {component} exited ({status})\n")
                if left[component] <= 0:
                    raise AirflowStartError(f"{component} exited ({status}); see {log}:\n{_tail(log)}")
                left[component] -= 1
                self._stop_leftovers(component)
                self._spawn(component, self.environment())
            if dead:  # look at the restarted ones again before believing any health report
                time.sleep(1)
                continue
            health = self.health()
            passwords_ready = self._recorded().get("all_admins") or self.password_file.exists()
            if health and passwords_ready and all(
                    (health.get(key) or {}).get("status") == "healthy"
                    for comp, key in HEALTH_KEYS.items() if comp in self.components) \
                    and (health.get("metadatabase") or {}).get("status") == "healthy" \
                    and self._get("/execution/health", 30) is not None:  # warm the execution API up
                return health
            time.sleep(1)
        raise AirflowStartError(f"Airflow in {self.home} not healthy after {timeout:.0f} s: {health}; "
                                f"logs in {self.log_dir}")

    def stop(self, timeout: float = 15) -> list[str]:
        """End every process of the deployment; the components that had any, in stop order.

        SIGTERM to each of its processes, SIGKILL to whatever is left after `timeout`, then a
        last look: a process that outlived SIGKILL raises AirflowStopError naming it, and its
        component's pid file is kept for the next try.
        """
        known = self.known_components()
        procs = self.leftovers()
        self._terminate(procs, timeout)
        survivors = self.leftovers()
        for component in known:  # reap leaders that are our own children (tests)
            try:
                os.waitpid(int(self.pid_file(component).read_text().strip()), os.WNOHANG)
            except (OSError, ValueError, ChildProcessError):
                pass
        kept = set(survivors.values())
        for component in known:
            if component not in kept:
                self.pid_file(component).unlink(missing_ok=True)
        had = set(procs.values())
        stopped = [c for c in reversed(known) if c in had] + sorted(had - set(known))
        if survivors:
            raise AirflowStopError({pid: f"{component}: {_cmdline(pid)}" for pid, component in survivors.items()},
                                   stopped)
        self.state_file.unlink(missing_ok=True)
        return stopped

    def leftovers(self, components: tuple[str, ...] | None = None) -> dict[int, str]:
        """Live processes of this deployment's `components` (default: all of it, every Celery
        worker included): pid → component.

        A process belongs to a component when it carries the component's tag, or sits in the
        process group or session of the component's recorded leader (when that pid is not a
        stranger's now), or descends from such a process. Never this process or its ancestors,
        never a PostgreSQL server process.
        """
        everything = components is None
        components = self.known_components() if everything else components
        table = _process_table()
        prefix = self._tag("")
        leaders: dict[int, str] = {}
        for component in components:
            pid = self._recorded_pid(component)
            if pid and (pid not in table or _is_component(pid, self._tag(component))):
                leaders[pid] = component
        found: dict[int, str] = {}
        for pid, proc in table.items():
            tag = _environ_tag(pid)
            if tag is not None and tag.startswith(prefix):
                name = tag[len(prefix):]
                if name in components or (everything and _is_worker(name)):
                    found[pid] = name
            elif tag is None and (proc.pgid in leaders or proc.sid in leaders):
                found[pid] = leaders[proc.pgid if proc.pgid in leaders else proc.sid]
        children: dict[int, list[int]] = {}
        for pid, proc in table.items():
            children.setdefault(proc.ppid, []).append(pid)
        stack = list(found)
        while stack:
            parent = stack.pop()
            for child in children.get(parent, ()):
                if child not in found:
                    found[child] = found[parent]
                    stack.append(child)
        spared = {pid for pid, proc in table.items() if proc.comm in ("postgres", "pg_ctl")}
        me = os.getpid()
        while me in table and me not in spared:
            spared.add(me)
            me = table[me].ppid
        return {pid: component for pid, component in found.items() if pid not in spared}

    def _stop_leftovers(self, component: str, timeout: float = 10) -> None:
        """Before a dead component starts again: end what its previous run left (its log server,
        executor workers, tasks), which would otherwise hold its ports and run twice."""
        procs = self.leftovers((component,))
        if not procs:
            return
        self._terminate(procs, timeout)
        survivors = self.leftovers((component,))
        with open(self.log_file(component), "a") as out:
            out.write(f"\n---- {time.strftime('%Y-%m-%d %H:%M:%S')} stopped {len(procs) - len(survivors)} "
                      f"processes left by the previous {component} (pids {' '.join(map(str, sorted(procs)))})\n")
        if survivors:
            listing = "; ".join(f"pid {pid} ({_cmdline(pid)})" for pid in sorted(survivors))
            raise AirflowStartError(f"processes left by the previous {component} outlived SIGKILL: {listing}")

    def _terminate(self, procs: dict[int, str], timeout: float) -> None:
        """SIGTERM every one of `procs`, SIGKILL what is left of their components after `timeout`,
        looking again each round for children started meanwhile."""
        if not procs:
            return
        components = tuple(sorted(set(procs.values())))
        for pid in procs:
            _send(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_alive(pid) for pid in procs):
            time.sleep(0.2)
        for _ in range(3):
            left = self.leftovers(components)
            if not left:
                return
            for pid in left:
                _send(pid, signal.SIGKILL)
            settle = time.monotonic() + 3
            while time.monotonic() < settle and any(_alive(pid) for pid in left):
                time.sleep(0.1)

    def _tag(self, component: str) -> str:
        return f"{self.home.resolve()}::{component}"

    def _recorded_pid(self, component: str) -> int | None:
        try:
            return int(self.pid_file(component).read_text().strip())
        except (OSError, ValueError):
            return None

    def _recorded(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def logins(self) -> list[tuple[str, str, str | None]]:
        """(user, role, password) for every simple-auth-manager user the running deployment has;
        Airflow generates a password for each new user into the password file and keeps it."""
        recorded = self._recorded()
        try:
            passwords = json.loads(self.password_file.read_text())
        except (OSError, ValueError):
            passwords = {}
        out = []
        for entry in (recorded.get("users") or DEFAULT_USERS).split(","):
            user, _, role = entry.strip().partition(":")
            if user:
                out.append((user, role.split(":")[0], passwords.get(user)))
        return out

    def summary(self) -> str:
        if self._recorded().get("all_admins"):
            login = "login: none needed (simple_auth_manager_all_admins: everyone is admin)"
        else:
            login = "logins: " + ", ".join(f"{user} ({role}) / {password or '(not generated yet)'}"
                                           for user, role, password in self.logins())
            login += f"\n  passwords: {self.password_file}"
        return (f"Airflow UI and REST API: {self.base_url}  (executor {self.executor})\n"
                f"{login}\n"
                f"logs: {self.log_dir}   stop: make airflow-stop")


def _config_path() -> Path:
    from campus_sync import config

    return config.config_path().resolve()


def _airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow-core")


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _check_port_free(port: int, host: str = "0.0.0.0") -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise AirflowStartError(f"port {port} is in use; choose another (AIRFLOW_PORT=...)") from None


def _wait_port(port: int, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AirflowStartError(f"{what} did not listen on port {port}; see {log}:\n{_tail(log)}")


def _is_component(pid: int, tag: str | None = None) -> bool:
    """The pid still runs our component (not a recycled pid): its environment carries `tag`; a
    process without any tag counts when its command line looks like one of ours."""
    found = _environ_tag(pid)
    if found is not None:
        return tag is None or found == tag
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return True  # no /proc: trust the pid file
    return any(word in cmdline for word in ("airflow", "celery", "redis"))


@dataclass(frozen=True)
class _Proc:
    pid: int
    comm: str
    ppid: int
    pgid: int
    sid: int


def _process_table() -> dict[int, _Proc]:
    """Every live (not zombie) process: pid → name, parent, process group, session."""
    out: dict[int, _Proc] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):
            continue
        pid = int(entry.name)
        out[pid] = _Proc(pid, comm, int(fields[1]), int(fields[2]), int(fields[3]))
    return out


def _environ_tag(pid: int) -> str | None:
    """The process's CAMPUS_SYNC_AIRFLOW_COMPONENT (from the environment it started with)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    key = TAG.encode() + b"="
    for entry in environ.split(b"\0"):
        if entry.startswith(key):
            return entry[len(key):].decode(errors="replace")
    return None


def _cmdline(pid: int) -> str:
    try:
        text = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"
    return text[:120] + ("..." if len(text) > 120 else "")


def _send(pid: int, sig: int) -> None:
    """Signal one process (not its group: a group may hold a process `leftovers` spares)."""
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):  # gone, or not ours to signal: seen as a survivor
        pass


def _group_has_live(pgid: int) -> bool:
    return any(proc.pgid == pgid for proc in _process_table().values())
