"""A value PostgreSQL cannot take (a text that is no date, a number out of range, a domain's
check) fails the object at once, as a SyncError (the DAG task fails without retrying: the same
rows fail the same way on every try), naming the side it failed on, the district, the object
and the column; the state keeps what it had. Real PostgreSQL, real district tables."""

from __future__ import annotations

import psycopg
import pytest

from campus_sync.engine import sync as engine

from pg_helpers import one_object_deployment
from test_engine import rows, snapshot, sync
from test_safety import sync_plan

pytestmark = pytest.mark.db

YAML = """objects:
  - name: Visit
    description: a nurse visit; the district keeps its date as text and its length in minutes
    parents: []
    key: [visitID]
    columns: {visitID: int, visitDate: date, seconds: int, grade: int, note: text}
"""
SQL = """SELECT visitID,
       CAST(visitDate AS date) AS visitDate,
       minutes * 60 AS seconds,
       CAST(grade AS campus.grade_level) AS grade,
       note,
       NULL::text AS reject_reason
  FROM campus.visit
"""


@pytest.fixture
def visits(tmp_path, server_dsn):
    p = one_object_deployment(server_dsn, tmp_path, "visit", YAML, SQL)
    with psycopg.connect(p["district"]) as conn:
        conn.execute("ALTER TABLE campus.visit ALTER COLUMN visitdate TYPE text")
        conn.execute("ALTER TABLE campus.visit RENAME COLUMN seconds TO minutes")
        conn.execute("CREATE DOMAIN campus.grade_level AS int CHECK (VALUE BETWEEN 0 AND 12)")
        conn.execute("INSERT INTO campus.visit SELECT i, '2026-09-' || (i % 28 + 1), i % 50, i % 13, 'visit ' || i"
                     " FROM generate_series(1, 60) AS i")
    return p


def sync_visits(p):
    return engine.sync_object(p["graph"], "Visit", district_id="0101", source_dsn=p["district"],
                              state_dsn=p["state"], scope=engine.Scope(2027))


BAD = {  # column: (the district's bad value, what PostgreSQL says)
    "visitDate": ("UPDATE campus.visit SET visitdate = 'next Tuesday' WHERE visitid = 37",
                  'invalid input syntax for type date: "next Tuesday"'),
    "seconds": ("UPDATE campus.visit SET minutes = 2000000000 WHERE visitid = 37", "integer out of range"),
    # a domain's check: SQLSTATE class 23 at the district, as deterministic as class 22
    "grade": ("UPDATE campus.visit SET grade = 13 WHERE visitid = 37",
              'value for domain campus.grade_level violates check constraint "grade_level_check"'),
}


@pytest.mark.parametrize("column", sorted(BAD))
@pytest.mark.parametrize("resync", [False, True], ids=["first-load", "resync"])
def test_a_bad_district_value_fails_at_once_naming_side_district_object_and_column(visits, column, resync):
    if resync:
        assert sync_visits(visits).inserted == 60
    before = rows(visits["state"], "SELECT * FROM state.visit ORDER BY visitid")
    change, said = BAD[column]
    with psycopg.connect(visits["district"]) as conn:
        conn.execute(change)
    with pytest.raises(engine.BadDataError) as err:
        sync_visits(visits)
    assert isinstance(err.value, engine.SyncError)  # what the DAG task fails at once on
    assert not engine.connection_failed(err.value)  # ...and never retries
    msg = str(err.value)
    assert msg.startswith("district database: syncing Visit for district 0101: ")
    assert f"column {column}: {said}" in msg, msg
    assert "not retried" in msg and "include/sql/extract/visit.sql" in msg
    assert rows(visits["state"], "SELECT * FROM state.visit ORDER BY visitid") == before


def test_a_district_text_the_state_cannot_take_names_the_state_side(graph, deployment):
    """The district keeps a shot's date as text; its extract passes it on as it is. The first
    load's COPY into the state's date column fails there; a resync's digest, which reads the
    value as its declared type, fails at the district. Either way: the column, at once."""
    sync_plan(graph, deployment, ["PersonIdentity"])
    d, state = deployment["districts"]["0101"], deployment["state"]
    with psycopg.connect(d) as conn:
        conn.execute("ALTER TABLE campus.vaccineshot ALTER COLUMN shotdate TYPE text")
        conn.execute("UPDATE campus.vaccineshot SET shotdate = 'soon' WHERE shotid ="
                     " (SELECT max(shotid) FROM campus.vaccineshot)")
    with pytest.raises(engine.BadDataError) as err:
        sync(graph, deployment, "VaccineShot")
    msg = str(err.value)
    assert msg.startswith("state database: syncing VaccineShot for district 0101: ")
    assert 'column shotDate: invalid input syntax for type date: "soon"' in msg, msg
    assert snapshot(state, "vaccineshot") == []
    with psycopg.connect(d) as conn:  # loaded without the bad row, then the bad value comes back
        (shot,) = conn.execute("UPDATE campus.vaccineshot SET shotdate = '2026-10-01' WHERE shotdate = 'soon'"
                               " RETURNING shotid").fetchone()
    assert sync(graph, deployment, "VaccineShot").inserted > 0
    before = snapshot(state, "vaccineshot")
    with psycopg.connect(d) as conn:
        conn.execute("UPDATE campus.vaccineshot SET shotdate = '2026-13-01' WHERE shotid = %s", (shot,))
    with pytest.raises(engine.BadDataError) as err:
        sync(graph, deployment, "VaccineShot")
    msg = str(err.value)
    assert msg.startswith("district database: syncing VaccineShot for district 0101: ")
    assert "column shotDate: date/time field value out of range" in msg, msg
    assert snapshot(state, "vaccineshot") == before


def test_no_column_is_named_when_every_row_fails_alike(tmp_path, server_dsn):
    """The bad value sits in the extract's filter: every column read alone fails the same way,
    so no column is blamed; the message still names the side, the district and the object."""
    sql_text = SQL.replace("FROM campus.visit", "FROM campus.visit WHERE CAST(visitDate AS date) > '2000-01-01'")
    p = one_object_deployment(server_dsn, tmp_path, "visit", YAML, sql_text)
    with psycopg.connect(p["district"]) as conn:
        conn.execute("ALTER TABLE campus.visit ALTER COLUMN visitdate TYPE text")
        conn.execute("ALTER TABLE campus.visit RENAME COLUMN seconds TO minutes")
        conn.execute("CREATE DOMAIN campus.grade_level AS int CHECK (VALUE BETWEEN 0 AND 12)")
        conn.execute("INSERT INTO campus.visit VALUES (1, '2026-09-01', 5, 3, 'a'), (2, 'never', 5, 3, 'b')")
    with pytest.raises(engine.BadDataError) as err:
        sync_visits(p)
    msg = str(err.value)
    assert msg.startswith('district database: syncing Visit for district 0101: invalid input syntax for type date: '
                          '"never"'), msg
    assert "column" not in msg
