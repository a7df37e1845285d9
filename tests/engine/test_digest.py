"""Bucket digests: a resync copies only what differs, repairs what changed at the state, and
still counts every refusal."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from campus_sync.engine import digest

from test_engine import rows, snapshot, sync, sync_all

pytestmark = pytest.mark.db


@pytest.mark.parametrize(("held", "buckets"), [(0, 1), (16, 1), (17, 2), (40, 4), (1_000_000, 65536),
                                               (10**9, digest.MAX_BUCKETS)])
def test_bucket_count_is_a_bounded_power_of_two(held, buckets):
    assert digest.bucket_count(held) == buckets


def test_unchanged_resync_copies_nothing_and_counts_the_same(graph, deployment):
    first = sync_all(graph, deployment)
    second = sync_all(graph, deployment)
    for name, r in second.items():
        # a row refused for a missing parent is never at the state: its bucket is checked again
        orphans = any(k.startswith("parent_missing:") for k in r.error_reasons)
        assert (r.copied > 0) == orphans, name
        assert (r.processed, r.errors, r.error_reasons) == (first[name].processed, first[name].errors,
                                                            first[name].error_reasons), name


def test_resync_copies_only_the_differing_buckets(graph, deployment):
    sync_all(graph, deployment)
    with psycopg.connect(deployment["districts"]["0101"]) as conn:
        conn.execute("UPDATE campus.personidentity SET lastname = 'Changed'"
                     " WHERE personid = (SELECT min(personid) FROM campus.personidentity)")
    r = sync(graph, deployment, "PersonIdentity")
    assert (r.inserted, r.updated, r.deleted) == (0, 1, 0)
    assert 0 < r.copied <= r.processed // 2
    assert r.unchanged == r.processed - r.errors - 1


def test_resync_repairs_rows_changed_at_the_state(graph, deployment):
    """The digest reads the state as it is, not a memo of the last sync."""
    sync_all(graph, deployment)
    state = deployment["state"]
    before = snapshot(state, "vaccineshot")
    with psycopg.connect(state) as conn:
        ids = [r[0] for r in conn.execute("SELECT shotid FROM state.vaccineshot ORDER BY shotid LIMIT 2")]
        conn.execute("UPDATE state.vaccineshot SET vaccine = 'XX' WHERE shotid = %s", (ids[0],))
        conn.execute("DELETE FROM state.vaccineshot WHERE shotid = %s", (ids[1],))
        conn.execute("INSERT INTO state.vaccineshot (district_id, shotid, personid, vaccine, shotdate)"
                     " SELECT district_id, shotid + 900000, personid, vaccine, shotdate"
                     " FROM state.vaccineshot WHERE shotid = %s", (ids[0],))
    r = sync(graph, deployment, "VaccineShot")
    assert (r.inserted, r.updated, r.deleted) == (1, 1, 1)
    after = rows(state, "SELECT district_id, shotid, personid, vaccine, shotdate FROM state.vaccineshot ORDER BY 1, 2")
    assert after == [row[:5] for row in before]  # all but synced_at, which moves on rows written again


def test_orphan_loads_once_its_parent_arrives(graph, deployment):
    first = sync_all(graph, deployment)
    assert first["Enrollment"].error_reasons["parent_missing:PersonIdentity"] == 1
    d = deployment["districts"]["0101"]
    with psycopg.connect(d) as conn:
        (orphan,) = conn.execute("SELECT e.personid FROM campus.enrollment e WHERE NOT EXISTS"
                                 " (SELECT 1 FROM campus.personidentity p WHERE p.personid = e.personid)").fetchone()
        conn.execute("INSERT INTO campus.personidentity (personid, lastname, firstname) VALUES (%s, 'Found', 'At Last')",
                     (orphan,))
    assert sync(graph, deployment, "PersonIdentity").inserted == 1
    r = sync(graph, deployment, "Enrollment")
    assert r.inserted == 1 and "parent_missing:PersonIdentity" not in r.error_reasons
    assert rows(deployment["state"], "SELECT count(*) FROM state.enrollment WHERE personid = %s", (orphan,)) == [(1,)]
    assert sync(graph, deployment, "Enrollment").copied == 0


def test_digest_hashes_the_declared_types(graph, deployment):
    """An extract returning bigint / varchar / text for int / text / date columns digests as the
    state's stored values do; refused rows are counted, not hashed."""
    spec = graph.spec("PersonIdentity")
    source = ("SELECT 7::bigint AS personid, 'S7'::varchar(12) AS stateid, 'Doe'::varchar AS lastname,"
              " 'Jo' AS firstname, NULL::varchar AS middlename, 'F' AS gender, '2010-01-02'::text AS birthdate,"
              " NULL AS raceethnicity, NULL AS reject_reason"
              " UNION ALL SELECT 8, NULL, 'X', NULL, NULL, NULL, NULL, NULL, 'state_excluded_person'")
    with psycopg.connect(deployment["state"]) as conn:
        conn.execute("INSERT INTO state.personidentity (district_id, personid, stateid, lastname, firstname, gender,"
                     " birthdate) VALUES ('d', 7, 'S7', 'Doe', 'Jo', 'F', '2010-01-02')")
        target = sql.Identifier("state", "personidentity")
        scope = sql.SQL("s.district_id = %s")
        at_district = digest.district_digest(conn, spec, source, 4)
        rows_, accepted, _, _, reasons = digest.district_totals(conn, spec, source)
        assert (rows_, accepted, reasons) == (2, 1, {"state_excluded_person": 1})
        assert at_district.rows == 1  # the digest holds the accepted rows only
        assert at_district.changed(digest.state_digest(conn, spec, target, scope, ["d"], 4)) == []
        conn.execute("UPDATE state.personidentity SET middlename = '' WHERE district_id = 'd'")  # '' is not NULL
        changed = at_district.changed(digest.state_digest(conn, spec, target, scope, ["d"], 4))
        assert len(changed) == 1
        conn.rollback()


def test_first_load_without_parent_keys_streams_straight_in(graph, deployment):
    """School has no parent keys: its first load skips staging, yet refusals are still counted
    and refused rows never reach the state."""
    assert not graph.spec("School").foreign_keys
    d = deployment["districts"]["0101"]
    with psycopg.connect(d) as conn:
        conn.execute("UPDATE campus.school SET stateexclude = true"
                     " WHERE schoolid = (SELECT min(schoolid) FROM campus.school)")
        total, excluded = conn.execute("SELECT count(*), count(*) FILTER (WHERE stateexclude)"
                                       " FROM campus.school").fetchone()
    sync(graph, deployment, "District")
    r = sync(graph, deployment, "School")
    assert (r.processed, r.inserted, r.copied) == (total, total - excluded, total - excluded)
    assert r.error_reasons == {"state_excluded_school": excluded} and r.excluded == excluded
    assert rows(deployment["state"], "SELECT count(*), count(*) FILTER (WHERE stateexclude) FROM state.school"
                ) == [(total - excluded, 0)]
    again = sync(graph, deployment, "School")
    assert (again.copied, again.unchanged, again.error_reasons) == (0, total - excluded, r.error_reasons)


@pytest.mark.parametrize("first_load", [True, False])
def test_broken_extract_names_its_file(graph, deployment, first_load):
    """Whether the district is first read by the digest (resync) or by the copy (first load)."""
    from campus_sync.engine import sync as engine

    if not first_load:
        sync_all(graph, deployment)
    before = snapshot(deployment["state"], "school")
    with psycopg.connect(deployment["districts"]["0101"]) as conn:
        conn.execute("ALTER TABLE campus.school DROP COLUMN name")
    with pytest.raises(engine.SyncError, match=r"include/sql/extract/school\.sql for 'School'.*name"):
        sync(graph, deployment, "School")
    assert snapshot(deployment["state"], "school") == before


@pytest.mark.parametrize("typ, values", [
    ("int", "(g * 7919 - 5000000)::integer"),
    ("bigint", "(g * 4294967311 - 99)::bigint"),
    ("text", "'k' || g || repeat('é', g % 5)"),
])
def test_a_one_column_key_hash_equals_hash_record_extended(server_dsn, typ, values):
    """key_hash_expr computes a one-column key's hash directly: same values, so the same buckets."""
    from campus_sync.engine import digest
    from campus_sync.hierarchy.model import ObjectSpec

    spec = ObjectSpec(name="K", description="", parents=(), key=("k",), columns=(("k", typ),))
    expr = digest.key_hash_expr(spec, "t").as_string(None)
    assert "hash_record_extended" not in expr
    with psycopg.connect(server_dsn) as conn:
        mismatched = conn.execute(
            f"SELECT count(*) FILTER (WHERE hash_record_extended(ROW(t.k), 0) IS DISTINCT FROM {expr})"
            f" FROM (SELECT {values} AS k FROM generate_series(1, 20000) g UNION ALL SELECT NULL) t").fetchone()[0]
    assert mismatched == 0
