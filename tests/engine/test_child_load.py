"""A child object's first load: parents checked in one pass, the FK's per-row trigger skipped
only where that is safe, and never a row whose parent is not at the state."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from campus_sync.engine import sync as engine

pytestmark = pytest.mark.db
YEAR = 2027


def sync(graph, dep, name, state=None, **kw):
    return engine.sync_object(graph, name, district_id="0101", source_dsn=dep["districts"]["0101"],
                              state_dsn=state or dep["state"], scope=engine.Scope(YEAR), **kw)


def rows(dsn, query, params=()):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def add_orphan_and_duplicate(dsn):
    """One shot of a person nobody has, and one shot ID twice (the district has no PK here)."""
    with psycopg.connect(dsn) as conn:
        conn.execute("ALTER TABLE campus.vaccineshot DROP CONSTRAINT vaccineshot_pkey")
        first = conn.execute("SELECT shotid, personid FROM campus.vaccineshot ORDER BY 1 LIMIT 1").fetchone()
        conn.execute("INSERT INTO campus.vaccineshot VALUES (%s, %s, 'dup', DATE '2020-01-01')", first)
        conn.execute("INSERT INTO campus.vaccineshot VALUES (77000001, 99000001, 'orphan', DATE '2020-01-01')")
    return first[0]


@pytest.mark.parametrize("with_duplicate", [False, True])
def test_first_load_refuses_orphans_and_duplicates(graph, deployment, with_duplicate):
    d = deployment["districts"]["0101"]
    sync(graph, deployment, "PersonIdentity")
    if with_duplicate:
        dup = add_orphan_and_duplicate(d)
    else:
        with psycopg.connect(d) as conn:
            conn.execute("INSERT INTO campus.vaccineshot VALUES (77000001, 99000001, 'orphan', DATE '2020-01-01')")
    total = rows(d, "SELECT count(*) FROM campus.vaccineshot")[0][0]
    r = sync(graph, deployment, "VaccineShot")
    reasons = {"parent_missing:PersonIdentity": 1} | ({"duplicate_key": 2} if with_duplicate else {})
    assert r.error_reasons == reasons
    assert r.inserted == total - sum(reasons.values()) == rows(deployment["state"],
                                                               "SELECT count(*) FROM state.vaccineshot")[0][0]
    assert rows(deployment["state"], "SELECT count(*) FROM state.vaccineshot WHERE personid = 99000001") == [(0,)]
    if with_duplicate:
        assert rows(deployment["state"], "SELECT count(*) FROM state.vaccineshot WHERE shotid = %s", (dup,)) == [(0,)]
    # the foreign key is still there and enforced after the load
    with psycopg.connect(deployment["state"]) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("INSERT INTO state.vaccineshot (district_id, shotid, personid) VALUES ('0101', 1, 99000001)")


def test_first_load_without_the_privilege_keeps_the_triggers(graph, deployment, server_dsn):
    """A role that may not set session_replication_role loads the same rows, with the FK's
    triggers running (the privilege is an optimisation, never a requirement)."""
    state = deployment["state"]
    with psycopg.connect(state, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS campus_plain_loader")
        conn.execute("CREATE ROLE campus_plain_loader LOGIN")
        dbname = conn.info.dbname
        conn.execute(sql.SQL("GRANT ALL ON DATABASE {} TO campus_plain_loader").format(sql.Identifier(dbname)))
        conn.execute("GRANT USAGE ON SCHEMA state TO campus_plain_loader")
        conn.execute("GRANT ALL ON ALL TABLES IN SCHEMA state TO campus_plain_loader")
    plain = psycopg.conninfo.make_conninfo(state, user="campus_plain_loader")
    try:
        sync(graph, deployment, "PersonIdentity")
        with psycopg.connect(deployment["districts"]["0101"]) as conn:
            conn.execute("INSERT INTO campus.vaccineshot VALUES (77000001, 99000001, 'orphan', DATE '2020-01-01')")
        r = sync(graph, deployment, "VaccineShot", state=plain)
        assert r.error_reasons == {"parent_missing:PersonIdentity": 1} and r.inserted == r.processed - 1
    finally:
        with psycopg.connect(state, autocommit=True) as conn:
            conn.execute("DROP OWNED BY campus_plain_loader")
            conn.execute("DROP ROLE campus_plain_loader")


def test_first_load_fires_a_trigger_the_deployment_added(graph, deployment):
    """Skipping the FK's triggers must not skip anyone else's: a table with a trigger of its
    own is loaded with every trigger on."""
    state = deployment["state"]
    with psycopg.connect(state) as conn:
        conn.execute("CREATE TABLE state.audit (shotid int)")
        conn.execute("""CREATE FUNCTION state.audit_shot() RETURNS trigger LANGUAGE plpgsql AS
                        $$ BEGIN INSERT INTO state.audit VALUES (NEW.shotid); RETURN NEW; END $$""")
        conn.execute("CREATE TRIGGER audit AFTER INSERT ON state.vaccineshot FOR EACH ROW"
                     " EXECUTE FUNCTION state.audit_shot()")
    sync(graph, deployment, "PersonIdentity")
    r = sync(graph, deployment, "VaccineShot")
    assert r.inserted > 0 and rows(state, "SELECT count(*) FROM state.audit") == [(r.inserted,)]


def test_parents_of_a_trigger_free_insert_are_locked_against_outside_deletes(graph, deployment):
    """With the FK triggers skipped, the parent rows the insert refers to are still locked FOR
    KEY SHARE until commit: a DELETE from outside the engine waits (here: times out) instead of
    leaving the new rows orphaned."""
    sync(graph, deployment, "PersonIdentity")
    spec = graph.spec("VaccineShot")
    person = rows(deployment["state"], "SELECT personid FROM state.personidentity WHERE district_id = '0101'"
                  " ORDER BY 1 LIMIT 1")[0][0]
    with psycopg.connect(deployment["state"]) as conn:
        cur = conn.cursor()
        cur.execute(sql.SQL("CREATE TEMP TABLE {} (personid integer, reject_reason text)").format(engine.STAGE))
        cur.execute(sql.SQL("INSERT INTO {} VALUES (%s, NULL)").format(engine.STAGE), (person,))
        engine._lock_parents(graph, spec, cur, "0101")
        with psycopg.connect(deployment["state"], autocommit=True) as other:
            other.execute("SET lock_timeout = '300ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("DELETE FROM state.personidentity WHERE district_id = '0101' AND personid = %s",
                              (person,))
        conn.rollback()


@pytest.mark.parametrize("path", ["direct", "staged"])
def test_a_parent_deleted_from_outside_during_a_first_load_leaves_no_orphan(graph, deployment, monkeypatch, path):
    """A DELETE from outside the engine (a DBA) in the middle of a child's trigger-free first load
    never leaves an orphan. Direct path (rows copied straight into the table): the delete lands
    after the copy, before the parents are locked, and the rows of the deleted parent are then
    found missing and not committed. Staged path (a duplicate key forces it): the parents are
    locked before they are checked, so a delete after the check waits for the commit (locked
    after the check, as before, the delete slipped in and the insert left an orphan)."""
    sync(graph, deployment, "PersonIdentity")
    state, d = deployment["state"], deployment["districts"]["0101"]
    if path == "staged":
        add_orphan_and_duplicate(d)
    held = [p for (p,) in rows(state, "SELECT personid FROM state.personidentity WHERE district_id = '0101'")]
    person, shots = rows(d, "SELECT personid, count(*) FROM campus.vaccineshot WHERE personid = ANY(%s)"  # no duplicated shot
                            " GROUP BY 1 HAVING count(*) = count(DISTINCT shotid) ORDER BY 1 LIMIT 1", (held,))[0]
    assert shots > 0
    outcome = {}

    def outside_delete():
        if outcome:
            return
        with psycopg.connect(state, autocommit=True) as other:
            other.execute("SET lock_timeout = '300ms'")
            try:
                other.execute("DELETE FROM state.personidentity WHERE district_id = '0101' AND personid = %s",
                              (person,))
                outcome["delete"] = "done"
            except psycopg.errors.LockNotAvailable:
                outcome["delete"] = "waited"

    for hooked in ("_load_direct", "_check_parents"):
        real = getattr(engine, hooked)

        def after(*args, _real=real, **kwargs):
            out = _real(*args, **kwargs)
            if out is not None or _real.__name__ == "_check_parents":  # the copy went in / the check ran
                outside_delete()
            return out
        monkeypatch.setattr(engine, hooked, after)
    r = sync(graph, deployment, "VaccineShot")
    orphans = rows(state, "SELECT count(*) FROM state.vaccineshot v WHERE v.district_id = '0101' AND NOT EXISTS"
                          " (SELECT 1 FROM state.personidentity p WHERE p.district_id = v.district_id"
                          " AND p.personid = v.personid)")
    assert orphans == [(0,)]
    if path == "direct":
        assert outcome["delete"] == "done"
        assert r.error_reasons == {"parent_missing:PersonIdentity": shots}
        assert r.copied == r.inserted + shots
    else:
        assert outcome["delete"] == "waited"
        assert rows(state, "SELECT count(*) FROM state.vaccineshot WHERE personid = %s", (person,))[0][0] == shots
    assert r.inserted == rows(state, "SELECT count(*) FROM state.vaccineshot WHERE district_id = '0101'")[0][0]
