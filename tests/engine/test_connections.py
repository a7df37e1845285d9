"""Connections kept from one sync to the next inside `connections.reusing()`, and only there:
a failed sync's connections are closed, a connection the server dropped is replaced, and
nothing stays open after the block (or without one)."""

from __future__ import annotations

import socket

import psycopg
import pytest

from campus_sync.engine import connections
from campus_sync.engine import sync as engine
from pg_helpers import one_object_deployment

pytestmark = pytest.mark.db
connect = psycopg.connect  # the tests' own connections, not counted by `opened`

YAML = """objects:
  - name: Item
    description: one integer-keyed object
    parents: []
    key: [id]
    columns: {id: int, label: text}
"""
SQL = "SELECT id, label, NULL::text AS reject_reason FROM campus.item\n"


@pytest.fixture
def item(tmp_path, server_dsn):
    p = one_object_deployment(server_dsn, tmp_path, "item", YAML, SQL)
    with connect(p["district"]) as conn:
        conn.execute("INSERT INTO campus.item SELECT g, 'row ' || g FROM generate_series(1, 50) g")
    return p


@pytest.fixture
def opened(monkeypatch):
    """Every connection the engine opens."""
    seen: list[psycopg.Connection] = []
    real = psycopg.connect

    def counted(*args, **kwargs):
        conn = real(*args, **kwargs)
        seen.append(conn)
        return conn

    monkeypatch.setattr(engine.psycopg, "connect", counted)
    return seen


def sync(p, **kwargs):
    return engine.sync_object(p["graph"], "Item", district_id="0101", source_dsn=p["district"],
                              state_dsn=p["state"], scope=engine.Scope(2027), **kwargs)


def backends(dsn: str) -> int:
    """Other sessions connected to `dsn`'s database."""
    with connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                            " AND pid <> pg_backend_pid()").fetchone()[0]


def test_syncs_in_a_block_share_two_connections_closed_at_its_end(item, opened):
    with connections.reusing():
        assert sync(item).inserted == 50
        assert sync(item).unchanged == 50
        with connect(item["district"]) as conn:
            conn.execute("UPDATE campus.item SET label = 'changed' WHERE id = 7")
        assert sync(item).updated == 1
        assert len(opened) == 2  # one state and one district connection for all three
        assert backends(item["state"]) == 1 and backends(item["district"]) == 1
    assert all(c.closed for c in opened)
    assert backends(item["state"]) == 0 and backends(item["district"]) == 0


def test_without_a_block_nothing_is_kept(item, opened):
    sync(item)
    sync(item)
    assert len(opened) == 4 and all(c.closed for c in opened)


def test_a_failed_sync_closes_its_connections_and_the_next_one_opens_new(item, opened):
    with connections.reusing():
        sync(item)
        with connect(item["district"]) as conn:
            conn.execute("DELETE FROM campus.item WHERE id > 5")
        with pytest.raises(engine.MassDeleteError):
            sync(item)
        assert all(c.closed for c in opened)  # rolled back and closed, not kept
        assert sync(item, guard=engine.DeleteGuard(confirmed=True)).deleted == 45
        assert len(opened) == 4
    with connect(item["state"]) as conn:
        assert conn.execute("SELECT count(*) FROM state.item").fetchone()[0] == 5


def test_a_kept_connection_the_server_dropped_is_replaced(item, opened):
    with connections.reusing():
        sync(item)
        with connect(item["state"], autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN (%s, %s)"
                         " AND pid <> pg_backend_pid()", ("t_item_state", "t_item_district"))
        assert sync(item).unchanged == 50
        assert len(opened) == 4


def test_the_state_connection_is_closed_even_when_giving_back_the_district_fails(item, opened, monkeypatch):
    """The state's transaction holds the object's advisory locks: it must end however the
    district's connection ends."""
    real = connections.give_back

    def failing(conn, side, dsn, clean):
        real(conn, side, dsn, clean)
        if side == "district":
            raise RuntimeError("interrupted while closing the district")

    monkeypatch.setattr(connections, "give_back", failing)
    with pytest.raises(RuntimeError):
        sync(item)
    assert len(opened) == 2 and all(c.closed for c in opened)


def test_a_refused_connection_is_a_connection_failure_that_writes_nothing(item, opened):
    """A district that refuses connections fails the sync as `ConnectionFailedError` naming the
    district's side (retried where the sync runs), and leaves no connection open; a refusal by
    the engine itself (the mass-delete guard) is not a connection failure (not retried)."""
    with socket.socket() as s:  # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        refusing = f"postgresql://nobody@127.0.0.1:{s.getsockname()[1]}/campus"
    with pytest.raises(engine.ConnectionFailedError) as err:
        engine.sync_object(item["graph"], "Item", district_id="0101", source_dsn=refusing,
                           state_dsn=item["state"], scope=engine.Scope(2027))
    assert str(err.value).startswith("district database: syncing Item for district 0101: "), err.value
    assert isinstance(err.value, engine.SyncError) and engine.connection_failed(err.value)
    assert engine.connection_failed(err.value.__cause__)  # psycopg's own error says so too
    assert all(c.closed for c in opened)
    with connect(item["state"]) as conn:
        assert conn.execute("SELECT count(*) FROM state.item").fetchone()[0] == 0
    sync(item)
    with connect(item["district"]) as conn:
        conn.execute("DELETE FROM campus.item WHERE id > 5")
    with pytest.raises(engine.MassDeleteError) as refused:
        sync(item)
    assert not engine.connection_failed(refused.value)
