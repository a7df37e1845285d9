"""Local Ed-Fi API servers for the contract tests: real processes started by the same code as
`campus-sync edfi api start`, on free ports, storing in one fresh database (`t_edfi_local`) on the
session's PostgreSQL. `start_api(**options)` starts one more (faults, route styles, short token
lifetimes); every server the session started is stopped at its end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from edfi_helpers import Api, Server
from pg_helpers import dsn_for


@pytest.fixture(scope="session")
def edfi_dsn(server_dsn) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier("t_edfi_local")))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier("t_edfi_local")))
    return dsn_for(server_dsn, "t_edfi_local")


@pytest.fixture(scope="session")
def start_api(edfi_dsn, tmp_path_factory) -> Iterator[Callable[..., Server]]:
    from campus_sync.edfi.api.server import LocalEdFiApi, Options

    started: list[LocalEdFiApi] = []

    def start(key: str | None = None, secret: str | None = None, **options) -> Server:
        options.setdefault("token_limit", 0)  # tests share one client; the cap has a test of its own
        api = LocalEdFiApi(Options(port=0, **options), state_dir=tmp_path_factory.mktemp("edfi-api"), dsn=edfi_dsn,
                           key=key, secret=secret)
        started.append(api)
        info, _ = api.start(timeout=120)
        return Server(api, info)

    yield start
    for api in started:
        api.stop()


@pytest.fixture(scope="session")
def server(start_api) -> Server:
    """The default server: shared routes, no faults."""
    return start_api()


@pytest.fixture(scope="session")
def api(server) -> Api:
    """An authenticated client of the default server (one token for the session)."""
    return Api(server)
