"""docker-compose.yaml (no Docker engine here): the official Airflow 3 layout on CeleryExecutor,
this project's mounts, the image pinned to the project's Airflow, and every connection the
compose configuration names defined as an AIRFLOW_CONN_* variable pointing at a compose service."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from campus_sync import config

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                    "airflow-triggerer", "airflow-init"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return {k: str(v) for k, v in env.items()}


def _host_path(spec: str) -> Path:
    return ROOT / re.sub(r"^\$\{AIRFLOW_PROJ_DIR:-\.\}/", "", spec)


def test_official_layout_and_celery(compose):
    services = compose["services"]
    for name in ["postgres", "redis", *AIRFLOW_SERVICES, "flower", "state-db", "district-0101-db", "district-0102-db"]:
        assert name in services, name
    assert services["flower"]["profiles"] == ["flower"]
    assert services["airflow-worker"]["command"] == "celery worker"
    assert services["airflow-apiserver"]["command"] == "api-server"
    for name in AIRFLOW_SERVICES + ["flower"]:
        env = _env(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
        assert urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
        assert urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).hostname == "airflow-apiserver"
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] and env["AIRFLOW__API__SECRET_KEY"]  # shared by all
    for name in AIRFLOW_SERVICES:
        if name != "airflow-init":
            assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_image_is_the_official_airflow_pinned_like_the_project(compose):
    requirements = (ROOT / "requirements.txt").read_text()
    airflow_pin = re.search(r"^apache-airflow==(\S+)$", requirements, re.M).group(1)
    celery_pin = re.search(r"^apache-airflow-providers-celery==(\S+)$", requirements, re.M).group(1)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^FROM apache/airflow:{re.escape(airflow_pin)}\b", dockerfile, re.M)
    assert f'"apache-airflow=={airflow_pin}"' in dockerfile
    assert f'"apache-airflow-providers-celery=={celery_pin}"' in dockerfile
    assert compose["services"]["airflow-scheduler"]["build"] == "."


def test_project_folders_are_mounted(compose):
    for name in AIRFLOW_SERVICES:
        mounts = dict(v.rsplit(":", 1)[::-1] for v in compose["services"][name]["volumes"])
        for folder in ("dags", "plugins", "include"):
            assert f"/opt/airflow/{folder}" in mounts, (name, folder)
            assert _host_path(mounts[f"/opt/airflow/{folder}"]) == ROOT / folder
            assert (ROOT / folder).is_dir()


def test_every_connection_the_config_names_is_defined(compose):
    services = compose["services"]
    env = _env(services["airflow-scheduler"])
    container_path = env["CAMPUS_SYNC_CONFIG"]
    assert container_path.startswith("/opt/airflow/include/")
    host_path = ROOT / "include" / container_path.removeprefix("/opt/airflow/include/")
    cfg = config.parse(host_path)
    doc = yaml.safe_load(host_path.read_text())
    assert not doc.get("embedded_postgres"), "the compose deployment uses real databases only"
    conn_ids = [cfg.state_conn_id, *(d.conn_id for d in cfg.districts)]
    assert len(conn_ids) == 3
    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        for conn_id in conn_ids:
            uri = env.get(f"AIRFLOW_CONN_{conn_id.upper()}")
            assert uri, (name, conn_id)
            host = urlsplit(uri).hostname
            assert host in services, (conn_id, host)
            assert "pg_isready" in str(services[host]["healthcheck"]["test"])
            assert services[name]["depends_on"][host]["condition"] == "service_healthy"


def test_init_seeds_the_demo(compose):
    script = "\n".join(compose["services"]["airflow-init"]["command"])
    assert "campus-sync demo seed" in script
    assert "simple_auth_manager_passwords.json" in script
    assert _env(compose["services"]["airflow-init"])["_AIRFLOW_DB_MIGRATE"] == "true"


# ---------------------------------------------------------------- the image (Dockerfile, .dockerignore)
# requirements.txt packages the image does not need: tests only, or the embedded PostgreSQL (the
# compose deployment has real databases).
NOT_IN_IMAGE = {"pytest", "pytest-xdist", "hypothesis", "playwright", "pypdf", "pgserver"}


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", text, re.M)]


def _ignore_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex on a context-relative path."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if pattern.startswith("/", i):
                out, i = out[:-2] + "(?:.*/)?", i + 1
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "(?:/.*)?$")  # a matched directory excludes everything below it


def _ignored(path: str, rules: list[str]) -> bool:
    ignored = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule[1:] if negate else rule
        pattern = re.sub(r"/+$", "", pattern.strip().lstrip("/"))
        if pattern.startswith("./"):
            pattern = pattern[2:]
        if _ignore_regex(pattern).match(path):
            ignored = not negate
    return ignored


@pytest.fixture(scope="module")
def dockerignore() -> list[str]:
    text = (ROOT / ".dockerignore").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerignore_keeps_local_state_out_of_the_build_context(dockerignore, monkeypatch):
    from campus_sync import db

    monkeypatch.delenv("CAMPUS_SYNC_HOME", raising=False)
    data = db.home().relative_to(ROOT).as_posix()  # where `make demo` keeps the embedded database
    assert data == ".campus_sync"
    for path in [".venv/bin/python", ".venv/lib/python3.11/site-packages/numpy/__init__.py",
                 f"{data}/pgdata/PG_VERSION", f"{data}/pgdata/.s.PGSQL.5432", f"{data}/pgdata/postmaster.pid",
                 f"{data}/airflow/logs/scheduler.log", f"{data}/airflow/campus_sync_secrets.json",
                 "logs/dag_id=campus_full_resync/run_id=x/task_id=y/attempt=1.log",
                 "plugins/campus_sync/__pycache__/db.cpython-311.pyc", "dags/__pycache__/x.pyc",
                 ".pytest_cache/v/cache/lastfailed", "plugins/campus_state_sync.egg-info/PKG-INFO",
                 ".git/HEAD", "airflow_home/airflow.db", ".env"]:
        assert _ignored(path, dockerignore), path
    for path in ["dags/campus_full_resync.py", "plugins/campus_sync/db.py", "plugins/campus_sync_plugin.py",
                 "include/hierarchy/objects.yaml", "include/config/compose.yaml", "include/sql/state/x.sql",
                 "pyproject.toml", "constraints.txt", "requirements.txt", "Dockerfile"]:
        assert not _ignored(path, dockerignore), path


def test_dockerfile_installs_the_runtime_pins_under_the_lock(dockerignore):
    steps = _dockerfile()
    requirements = dict(re.findall(r"^([A-Za-z0-9_.\[\]-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    runtime = {name.split("[")[0].lower(): version for name, version in requirements.items()
               if name.split("[")[0].lower() not in NOT_IN_IMAGE}
    assert "numpy" in runtime and "pandas" in runtime
    copied = {}
    for instruction, args in steps:
        if instruction == "COPY":
            *sources, dest = [a for a in args.split() if not a.startswith("--")]
            for source in sources:
                copied[source] = dest
    assert "constraints.txt" in copied and not _ignored("constraints.txt", dockerignore)
    constraints_in_image = copied["constraints.txt"]
    installs = [args for instruction, args in steps if instruction == "RUN" and "pip install" in args]
    assert installs
    installed: dict[str, str] = {}
    for run in installs:
        for command in re.split(r"&&|;", run):
            if "pip install" not in command:
                continue
            words = command.split()
            assert "-c" in words, f"pip install without the lock: {command}"
            assert words[words.index("-c") + 1] in (constraints_in_image, constraints_in_image.rstrip("/") +
                                                    "/constraints.txt"), command
            for spec in re.findall(r'"([A-Za-z0-9_.\[\]-]+)==([^"]+)"', command):
                installed[spec[0].split("[")[0].lower()] = spec[1]
    assert installed == runtime


def test_the_image_carries_the_project(dockerignore):
    copies = {}
    for instruction, args in _dockerfile():
        if instruction == "COPY":
            *sources, dest = [a for a in args.split() if not a.startswith("--")]
            for source in sources:
                copies[source.rstrip("/")] = dest.rstrip("/")
    for folder in ("dags", "plugins", "include"):
        assert copies.get(folder) == f"/opt/airflow/{folder}", (folder, copies)
        assert not _ignored(f"{folder}/x", dockerignore)
    env = " ".join(args for instruction, args in _dockerfile() if instruction == "ENV")
    assert "CAMPUS_SYNC_INCLUDE=/opt/airflow/include" in env


def test_logs_are_not_committed():
    import subprocess

    for path in ("logs/scheduler/latest.log", "logs/dag_id=x/run_id=y/attempt=1.log"):
        proc = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
        assert proc.returncode == 0, path
