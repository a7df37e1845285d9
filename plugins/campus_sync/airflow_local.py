"""Run a real Airflow 3 on this machine: `make airflow`, `campus-sync airflow start|stop|status`, tests.

One `LocalAirflow` is one Airflow deployment: an AIRFLOW_HOME (default `.campus_sync/airflow`),
its metadata database on the project's embedded PostgreSQL (database `airflow_meta`, never
SQLite), and the components started as background processes, each in its own process group with
a pid file under `$AIRFLOW_HOME/run/` and its output in `$AIRFLOW_HOME/logs/<component>.log`, so
`stop` ends exactly what `start` started. Every component gets the same environment: this
project's dags/ and plugins/, `CAMPUS_SYNC_CONFIG`, the API port (UI, REST and the execution API
move together) and secrets kept in `$AIRFLOW_HOME/campus_sync_secrets.json` so JWTs and
encrypted connections survive a restart.

LocalExecutor runs api-server, scheduler, dag-processor and triggerer. CeleryExecutor adds a
Celery worker (apache-airflow-providers-celery) and, unless a broker URL is given, starts
Debian's `redis-server` on loopback as one more component.

Plain Python, no Airflow import: the components are `airflow` CLI processes.
"""

from __future__ import annotations

import json
import os
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


class AirflowStartError(RuntimeError):
    """A component did not come up; the message names it and the tail of its log."""


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
    celery_concurrency: int = 4
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

    @property
    def components(self) -> tuple[str, ...]:
        extra: tuple[str, ...] = ()
        if self.celery:
            extra = ("celery-worker",) if self.broker_url else ("redis", "celery-worker")
        return extra + tuple(c for c in BASE_COMPONENTS if self.triggerer or c != "triggerer")

    def pid_file(self, component: str) -> Path:
        return self.run_dir / f"{component}.pid"

    def log_file(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    # ------------------------------------------------------------------ environment
    def _secrets(self) -> dict[str, str]:
        """Secrets shared by every component, generated once per AIRFLOW_HOME."""
        path = self.home / "campus_sync_secrets.json"
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
        """The environment every component runs with (our settings win over the caller's)."""
        runtime = self.home / "runtime"
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))  # pgserver/platformdirs warn without one
        keys = self._secrets()
        meta = self.metadata_uri()
        env = dict(os.environ)
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(paths.PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(paths.PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.password_file),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            "AIRFLOW__API__BASE_URL": self.base_url + "/",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": self.host,
            "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.log_dir),
            # Airflow's defaults (8793/8794) collide with any other Airflow on the machine.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_ports[0] if self.log_ports else self.port + 1),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_ports[1] if self.log_ports else self.port + 2),
            "CAMPUS_SYNC_HOME": str(db.home()),
            "CAMPUS_SYNC_CONFIG": str(_config_path()),
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",  # a native crash leaves its traceback in the component's log
        })
        # Tunables a user may set in the shell; defaults sized for a small machine.
        env.setdefault("AIRFLOW__API__WORKERS", "1")
        # A task's calls to the execution API time out after 5 s by default: far too short on a
        # busy 2-core machine (the first `run` call of a task then fails before the task starts).
        env.setdefault("AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT", "60")
        env.setdefault("AIRFLOW__CORE__PARALLELISM", "8")
        env.setdefault("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK", "False")
        env.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
        env.pop("AIRFLOW_CONFIG", None)
        if self.celery:
            broker = self.broker_url or f"redis://127.0.0.1:{self.redis_port}/0"
            env["AIRFLOW__CELERY__BROKER_URL"] = broker
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + meta.replace("+psycopg2", "", 1)
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(self.celery_concurrency)
        env.update(self.extra_env)
        return env

    def command(self, component: str) -> list[str]:
        airflow = str(Path(sys.executable).with_name("airflow"))
        if component == "api-server":
            return [airflow, "api-server", "--port", str(self.port), "--host", self.host]
        if component == "celery-worker":
            return [airflow, "celery", "worker", "--concurrency", str(self.celery_concurrency)]
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
            out[component] = pid if pid and _alive(pid) and _is_component(pid) else None
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
            proc = subprocess.Popen(self.command(component), env=env, cwd=self.home, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
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
        if not any(pids.values()):
            _check_port_free(self.port)
            if self.celery and not self.broker_url:
                _check_port_free(self.redis_port, "127.0.0.1")
        env = self.environment()
        self.migrate(env)
        self.state_file.write_text(json.dumps({"port": self.port, "executor": self.executor, "host": self.host,
                                               "components": list(self.components)}))
        for component in self.components:
            if not pids[component]:
                self._spawn(component, env)
                if component == "redis":
                    _wait_port(self.redis_port, 20, "redis-server", self.log_file("redis"))
        self.wait_healthy(timeout, restarts=2)
        return True

    def wait_healthy(self, timeout: float = 240, restarts: int = 0) -> dict:
        """Until every component reports healthy and the admin password file exists.

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
                self._spawn(component, self.environment())
            if dead:  # look at the restarted ones again before believing any health report
                time.sleep(1)
                continue
            health = self.health()
            if health and self.password_file.exists() and all(
                    (health.get(key) or {}).get("status") == "healthy"
                    for comp, key in HEALTH_KEYS.items() if comp in self.components) \
                    and (health.get("metadatabase") or {}).get("status") == "healthy" \
                    and self._get("/execution/health", 30) is not None:  # warm the execution API up
                return health
            time.sleep(1)
        raise AirflowStartError(f"Airflow in {self.home} not healthy after {timeout:.0f} s: {health}; "
                                f"logs in {self.log_dir}")

    def stop(self, timeout: float = 15) -> list[str]:
        """SIGTERM every component's process group at once, SIGKILL what is left after `timeout`."""
        groups: dict[str, int] = {}
        for component in reversed(self._all_components()):
            try:
                pid = int(self.pid_file(component).read_text().strip())
            except (OSError, ValueError):
                continue
            if (_alive(pid) and _is_component(pid)) or (not _alive(pid) and _group_has_live(pid)):
                groups[component] = pid
        for pid in groups.values():
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_group_has_live(p) for p in groups.values()):
            time.sleep(0.3)
        for pid in groups.values():
            if _group_has_live(pid):
                _signal_group(pid, signal.SIGKILL)
            try:  # reap when the group leader is our own child (tests)
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        for component in self._all_components():
            self.pid_file(component).unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)
        return list(groups)

    def _recorded(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _all_components(self) -> list[str]:
        known = ["redis", "celery-worker", *BASE_COMPONENTS]
        return [c for c in known if self.pid_file(c).exists()]

    def summary(self) -> str:
        password = self.admin_password() or f"(see {self.password_file})"
        return (f"Airflow UI and REST API: {self.base_url}  (executor {self.executor})\n"
                f"login: {ADMIN} / {password}   (password file: {self.password_file})\n"
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


def _is_component(pid: int) -> bool:
    """The pid still runs one of ours (not a recycled pid after a reboot)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return True  # no /proc: trust the pid file
    return any(word in cmdline for word in ("airflow", "celery", "redis"))


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_has_live(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
