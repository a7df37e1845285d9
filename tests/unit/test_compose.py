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
