"""Where the state and district databases are: Airflow connections, else (only where the
configuration says so) an embedded PostgreSQL.

Lookup order for a connection id (e.g. `campus_state`, `campus_district_0101`):
1. `AIRFLOW_CONN_<ID>` in the environment (URI or JSON, parsed by Airflow's own Connection model);
2. Airflow's connection store, when running inside Airflow (`BaseHook.get_connection`);
3. only when the configuration sets `embedded_postgres: true` (the shipped demo does): the
   embedded server from the `pgserver` wheel (data in `$CAMPUS_SYNC_HOME/pgdata`, default
   `.campus_sync/` in the project), database named after the connection id.
Otherwise an unresolved id is an error naming it: a typo in production must not sync into a
local database. A connection's `extra` passes libpq options (sslmode, sslrootcert, options...).
The embedded server is started on first use and left running, so Airflow tasks, the CLI and
psql share it; `campus-sync dsn state` prints its URI.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from campus_sync import paths

# libpq connection keywords a connection's `extra` may set; other extras (Airflow hook options
# such as `cursor` or `iam`) do not apply to a libpq connection and are ignored.
LIBPQ_EXTRAS = frozenset({
    "host", "hostaddr", "port", "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword",
    "sslnegotiation", "sslcompression", "channel_binding", "gssencmode", "krbsrvname", "requirepeer",
    "application_name", "connect_timeout", "options", "target_session_attrs", "keepalives",
    "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout", "passfile",
    "client_encoding", "load_balance_hosts",
})


class ConnectionConfigError(ValueError):
    """A connection id resolves nowhere, or its definition is malformed; the message names it."""


def home() -> Path:
    return Path(os.environ.get("CAMPUS_SYNC_HOME", paths.PROJECT_ROOT / ".campus_sync"))


def ensure_runtime_dir() -> None:
    """Give this process (and its children) a private XDG_RUNTIME_DIR before pgserver is imported.

    pgserver keeps its inter-process lock in platformdirs' user runtime directory, computed when
    pgserver is imported. platformdirs takes $XDG_RUNTIME_DIR only when it is a directory of ours
    with mode 0700 below no directory others may replace; otherwise (unset in containers, cron,
    ssh without a login session) it warns on stderr with `RuntimeDirWarning` and falls back to
    /tmp/runtime-<uid>. Then `$CAMPUS_SYNC_HOME/runtime` is used instead, so every process of one
    project home shares one lock. A directory the user's session provides is kept as it is.
    """
    import warnings

    import platformdirs

    def accepted() -> bool:
        current = os.environ.get("XDG_RUNTIME_DIR")
        if not current:
            return False
        with warnings.catch_warnings():  # the probe's own warning is the answer, not output
            warnings.simplefilter("ignore")
            chosen = Path(platformdirs.user_runtime_dir())
        return chosen.is_relative_to(current)

    if accepted():
        return
    runtime = home() / "runtime"
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    runtime.chmod(0o700)
    previous = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    if not accepted():  # e.g. a home below a world-writable directory: platformdirs says why
        if previous is None:
            os.environ.pop("XDG_RUNTIME_DIR")
        else:
            os.environ["XDG_RUNTIME_DIR"] = previous


def libpq_dsn(conn, where: str) -> str:
    """A libpq conninfo from an Airflow Connection (host, port, login, password, schema=database,
    libpq keywords from extra). `where` names the definition in errors."""
    conn_type = (conn.conn_type or "").lower()
    if conn_type not in ("postgres", "postgresql"):
        raise ConnectionConfigError(f"{where}: conn_type is {conn.conn_type!r}; expected postgres")
    extra = {k: str(v) for k, v in (conn.extra_dejson or {}).items() if k in LIBPQ_EXTRAS}
    params = {"host": conn.host or None, "port": conn.port or None, "user": conn.login or None,
              "password": conn.password or None, "dbname": conn.schema or None}
    params = {k: v for k, v in params.items() if v is not None} | extra
    if not params.get("host") and not params.get("hostaddr"):
        raise ConnectionConfigError(f"{where}: no host")
    if not params.get("dbname"):
        raise ConnectionConfigError(f"{where}: no database (the connection's schema field)")
    return make_conninfo(**params)


def _from_env(conn_id: str) -> str | None:
    var = f"AIRFLOW_CONN_{conn_id.upper()}"
    raw = os.environ.get(var, "").strip()
    if not raw:
        return None
    from airflow.sdk.definitions.connection import Connection

    try:
        conn = Connection.from_json(raw, conn_id=conn_id) if raw.startswith("{") else Connection.from_uri(raw, conn_id)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the variable's fault
        raise ConnectionConfigError(f"environment variable {var} is not a valid Airflow connection: {exc}") from None
    return libpq_dsn(conn, f"environment variable {var}")


def _from_airflow(conn_id: str) -> str | None:
    if "airflow" not in sys.modules:  # not running inside Airflow: do not import it
        return None
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    return libpq_dsn(conn, f"Airflow connection {conn_id!r}")


@functools.lru_cache(maxsize=1)
def embedded_server():
    """Start (or attach to) the embedded PostgreSQL; it keeps running after this process."""
    ensure_runtime_dir()
    import pgserver

    pgdata = home() / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(pgdata, cleanup_mode=None)


def running_embedded_uri(database: str) -> str | None:
    """The URI of `database` on the embedded server when it already runs, from its
    `postmaster.pid` (pgserver's own reader, `PostmasterInfo`), without attaching through
    `pgserver.get_server`; else None.

    Every Airflow task resolves its connections afresh, and get_server's attach (and the exit
    hook it registers) takes an inter-process file lock shared by every process using the
    server: measured here, it kept a LocalExecutor worker busy ~0.9 s longer per task."""
    ensure_runtime_dir()
    from pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(home() / "pgdata")
    except (OSError, ValueError, AssertionError):  # unreadable or malformed pid file
        return None
    if info is None or not info.is_running() or info.status != "ready" or info.socket_dir is None:
        return None
    return info.get_uri(database=database)


def stop_embedded(timeout: float = 60) -> Path | None:
    """Stop the embedded server of $CAMPUS_SYNC_HOME (fast shutdown: open sessions are ended);
    its data directory when it was running, None when it was not. The data stays; the next use
    starts it again."""
    ensure_runtime_dir()
    from pgserver import _commands
    from pgserver.utils import PostmasterInfo

    pgdata = home() / "pgdata"
    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):  # unreadable or malformed pid file
        info = None
    if info is None or not info.is_running():
        return None
    # pgserver runs the server as the `pgserver` system user when started by root
    user = "pgserver" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    _commands.pg_ctl(["-w", "-t", str(int(timeout)), "-m", "fast", "stop"], pgdata=pgdata,
                     **({"user": user} if user else {}))
    embedded_server.cache_clear()
    dsn.cache_clear()
    return pgdata


def embedded_dsn(database: str) -> str:
    """The URI of `database` on the embedded server (started if needed; the database is
    created on first use)."""
    uri_of = running_embedded_uri
    conn = None
    if (uri := uri_of("postgres")) is not None:
        try:
            conn = psycopg.connect(uri, autocommit=True)
        except psycopg.OperationalError:  # a stale postmaster.pid: let pgserver sort it out
            conn = None
    if conn is None:
        uri_of = embedded_server().get_uri
        conn = psycopg.connect(uri_of("postgres"), autocommit=True)
    with conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            from psycopg import sql

            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return uri_of(database)


APP_NAME = "campus-sync"
APP_NAME_LIMIT = 63  # PostgreSQL keeps NAMEDATALEN - 1 characters of an application_name


def application_name() -> str:
    """What this package's connections call themselves in `pg_stat_activity`: `campus-sync`, or
    inside an Airflow task `campus-sync:<dag_id>/<task_id>` (the task runner exports the task's
    context as AIRFLOW_CTX_* before it runs), so a DBA sees which task holds a connection and
    how many each database has."""
    dag_id, task_id = os.environ.get("AIRFLOW_CTX_DAG_ID"), os.environ.get("AIRFLOW_CTX_TASK_ID")
    name = f"{APP_NAME}:{dag_id}/{task_id}" if dag_id and task_id else APP_NAME
    # PostgreSQL keeps printable ASCII only (anything else arrives as \xNN escapes)
    return "".join(c if " " <= c <= "~" else "?" for c in name)[:APP_NAME_LIMIT]


@functools.lru_cache(maxsize=1024)
def _named(conninfo: str, name: str) -> str:
    return make_conninfo(conninfo, fallback_application_name=name)


def dsn(conn_id: str, what: str | None = None, embedded: bool | None = None) -> str:
    """The libpq conninfo for an Airflow connection id (`what` names its use in errors, e.g.
    "district 0101"). The embedded server is used when `embedded` is true, or when it is None
    and the configuration sets `embedded_postgres: true`.

    It carries `fallback_application_name` (`application_name()`, read at every call: one
    process runs many tasks under `dag.test()`); an `application_name` in the connection's extra,
    or PGAPPNAME, wins over it. The lookup is cached per process: connections do not change
    during a task or a `dag.test()` run (`dsn.cache_clear()` forgets them).
    """
    return _named(_resolve(conn_id, what, embedded), application_name())


def uri(conn_id: str, what: str | None = None, embedded: bool | None = None) -> str:
    """The connection as configured (a URI for `campus-sync dsn`, psql and scripts), without the
    application name `dsn` adds."""
    return _resolve(conn_id, what, embedded)


@functools.lru_cache(maxsize=256)
def _resolve(conn_id: str, what: str | None, embedded: bool | None) -> str:
    found = _from_env(conn_id) or _from_airflow(conn_id)
    if found:
        return found
    if embedded is None:
        from campus_sync import config

        cfg = config.load()
        embedded, source = cfg.embedded_postgres, cfg.source
    else:
        source = "the caller"
    if embedded:
        return embedded_dsn(conn_id)
    label = f" for {what}" if what else ""
    raise ConnectionConfigError(
        f"connection {conn_id!r}{label} is not defined: set AIRFLOW_CONN_{conn_id.upper()} or create it in "
        f"Airflow (the embedded database is used only with embedded_postgres: true, which {source} does not set)")


dsn.cache_clear = _resolve.cache_clear  # type: ignore[attr-defined]  # the lookup is what is cached


def is_embedded(conn_id: str) -> bool:
    return _from_env(conn_id) is None and _from_airflow(conn_id) is None


def connect(conn_id_or_dsn: str, **kwargs) -> psycopg.Connection:
    target = conn_id_or_dsn if "://" in conn_id_or_dsn or "=" in conn_id_or_dsn else dsn(conn_id_or_dsn)
    return psycopg.connect(target, **kwargs)
