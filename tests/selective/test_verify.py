"""Verification Summary on real PostgreSQL: exact damage found, stored, healed by selective sync."""

from __future__ import annotations

import json

import psycopg
import pytest
from selective_helpers import DISTRICT, YEAR, all_rows, copy_row_with_key, execute, q

from campus_sync import cli
from campus_sync.tools import verify

pytestmark = pytest.mark.db
EXTRA_PERSON = 77_777_777


def by_object(summary: dict, district: str = DISTRICT) -> dict[str, dict]:
    (d,) = [d for d in summary["districts"] if d["district_id"] == district]
    return {o["object"]: o for o in d["objects"]}


def damage(state: str, person: int) -> dict:
    """One deleted Behavior row, one extra PersonIdentity, one altered Enrollment, one altered School."""
    (behavior,) = q(state, "SELECT behaviorid FROM state.behavior WHERE district_id = %s AND personid = %s"
                           " ORDER BY behaviorid LIMIT 1", (DISTRICT, person))[0]
    (enrollment,) = q(state, "SELECT enrollmentid FROM state.enrollment WHERE district_id = %s AND personid = %s"
                             " AND endyear = %s LIMIT 1", (DISTRICT, person, YEAR))[0]
    (school,) = q(state, "SELECT min(schoolid) FROM state.school WHERE district_id = %s", (DISTRICT,))[0]
    assert execute(state, "DELETE FROM state.behavior WHERE behaviorid = %s", (behavior,)) == 1
    copy_row_with_key(state, "personidentity", "personID", EXTRA_PERSON, "district_id = %s AND personid = %s",
                      (DISTRICT, person))
    assert execute(state, "UPDATE state.enrollment SET grade = 'XX' WHERE enrollmentid = %s", (enrollment,)) == 1
    assert execute(state, "UPDATE state.school SET name = 'Renamed' WHERE schoolid = %s", (school,)) == 1
    return {"behavior": behavior, "enrollment": enrollment, "school": school}


def test_verify_finds_exactly_the_damage_and_heal_repairs_it(synced, graph, student, capsys):
    state = synced["state"]
    person, _ = student
    assert graph.children("Behavior") == ()  # deleting a Behavior row cascades nowhere
    enabled = graph.enabled("KY")
    clean = verify.verify([DISTRICT], user="tester")
    assert clean["districts"][0]["overall_accuracy"] == 100.0 and clean["districts"][0]["total_errors"] == 0
    objs = by_object(clean)
    assert list(objs) == list(enabled)                   # every enabled object, run order
    assert all(o["total_errors"] == 0 and o["accuracy"] == 100.0 for o in objs.values())
    # rows the state refuses by rule are counted at the district but not expected at the state
    assert objs["Enrollment"]["refused"] > 0
    assert objs["Enrollment"]["at_state"] == objs["Enrollment"]["at_district"] - objs["Enrollment"]["refused"]
    assert objs["TestScore"]["refused"] >= 6  # the six TestScore batch-sync requirements, and orphans
    assert clean["heal_keys"] == {} and clean["unhealable"] == {}
    good = all_rows(state, graph, ["Behavior", "PersonIdentity", "Enrollment", "School"])

    hurt = damage(state, person)
    found = verify.verify([DISTRICT], user="tester")
    objs = by_object(found)
    errors = {n: (o["missing"], o["extra"], o["different"]) for n, o in objs.items() if o["total_errors"]}
    assert errors == {"Behavior": (1, 0, 0), "PersonIdentity": (0, 1, 0), "Enrollment": (0, 0, 1),
                      "School": (0, 0, 1)}
    pi = objs["PersonIdentity"]
    assert (pi["at_district"], pi["at_state"], pi["distinct"]) == (44, 45, 45)
    assert pi["accuracy"] == 97.77  # 44 of 45 right, rounded down
    assert objs["Behavior"]["at_state"] == objs["Behavior"]["distinct"] - 1
    d = found["districts"][0]
    assert d["total_errors"] == 4 and d["overall_accuracy"] == verify.accuracy(d["distinct"], 4) < 100
    assert found["heal_keys"] == {DISTRICT: {"PersonIdentity": sorted([person, EXTRA_PERSON]),
                                            "Enrollment": [hurt["enrollment"]]}}
    assert found["unhealable"] == {DISTRICT: {"School": 1}}

    # stored: the latest summary reads back without recomputing, with the mismatched keys
    with psycopg.connect(state) as conn:
        stored = verify.latest(conn, [DISTRICT])
        sample = {(r["object"], r["issue"], r["key_text"], r["heal_key"])
                  for r in verify.issues(conn, found["run_id"], DISTRICT)}
    assert stored["districts"] == found["districts"] and stored["run_id"] == found["run_id"]
    assert sample == {("Behavior", "missing", str(hurt["behavior"]), person),
                      ("PersonIdentity", "extra", str(EXTRA_PERSON), EXTRA_PERSON),
                      ("Enrollment", "different", str(hurt["enrollment"]), hurt["enrollment"]),
                      ("School", "different", str(hurt["school"]), None)}
    assert cli.main(["verify", "--latest", "--json", "--district", DISTRICT]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["districts"][0]["total_errors"] == 4 and shown["run_id"] == found["run_id"]

    # heal: selective syncs of the mismatched keys, then a fresh summary
    healed = verify.heal(found, user="tester")
    assert [(b["object"], b["records"], b["status"]) for b in healed["batches"]] == [
        ("PersonIdentity", "1/2", "complete"), ("Enrollment", "1/1", "complete")]
    assert healed["skipped"] == []
    after = healed["summary"]
    errors = {n: o["total_errors"] for n, o in by_object(after).items() if o["total_errors"]}
    assert errors == {"School": 1}  # a selective sync does not touch schools
    repaired = all_rows(state, graph, ["Behavior", "PersonIdentity", "Enrollment", "School"])
    assert {k: v for k, v in repaired.items() if k != "School"} == {k: v for k, v in good.items() if k != "School"}
    assert repaired["School"] != good["School"]
    runs = q(state, "SELECT id, previous_run_id, requested_by FROM sync.verification_run ORDER BY id")
    assert [r[1] for r in runs] == [None, None, found["run_id"]] and after["run_id"] == runs[-1][0]
    kinds = q(state, "SELECT kind, requested_by, details->>'records' FROM sync.batch ORDER BY id")
    assert kinds == [("selective", "tester (verification heal)", "1/2"),
                     ("selective", "tester (verification heal)", "1/1")]


def test_verify_cli_text_and_other_district(synced, capsys):
    """District 0102 was never synced: everything it has is missing at the state."""
    assert cli.main(["verify", "--district", "0102"]) == 0
    out = capsys.readouterr().out
    assert "2026-27 Verification Results" in out
    assert "Verification Results for 0102 Campus County Public Schools" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("0102"))
    assert line.split()[-1] == "0.00%"
    with psycopg.connect(synced["state"]) as conn:
        latest = verify.latest(conn)
    assert [d["district_id"] for d in latest["districts"]] == ["0102"]
    objs = by_object(latest, "0102")
    assert objs["PersonIdentity"]["missing"] == objs["PersonIdentity"]["at_district"] > 0
    assert objs["PersonIdentity"]["at_state"] == 0
    assert cli.main(["verify", "--district", "9999"]) == 1
    assert "unknown district '9999'" in capsys.readouterr().err
    # an extract that cannot run names the object and district; the run keeps the error
    with psycopg.connect(synced["districts"]["0102"]) as conn:
        conn.execute("ALTER TABLE campus.plan RENAME COLUMN personid TO person_id")
    assert cli.main(["verify", "--district", "0102"]) == 1
    assert "cannot verify Plan for district 0102" in capsys.readouterr().err
    (error,) = q(synced["state"], "SELECT details->'errors'->>'0102' FROM sync.verification_run"
                                  " ORDER BY id DESC LIMIT 1")[0]
    assert "cannot verify Plan" in error


def _drop_primary_key(conn: psycopg.Connection, spec) -> None:
    """A district table without a primary key, as some districts' are."""
    conn.execute(f"ALTER TABLE campus.{spec.table} DROP CONSTRAINT {spec.table}_pkey")
    for k in spec.key:
        conn.execute(f"ALTER TABLE campus.{spec.table} ALTER COLUMN {k.lower()} DROP NOT NULL")


def _add_null_key_row(dsn: str, spec) -> None:
    """A copy of one district row of `spec` with its key set to NULL."""
    key = spec.key[0].lower()
    with psycopg.connect(dsn) as conn:
        _drop_primary_key(conn, spec)
        conn.execute(f"CREATE TEMP TABLE extra AS SELECT * FROM campus.{spec.table} ORDER BY {key} LIMIT 1")
        conn.execute(f"UPDATE extra SET {key} = NULL")
        assert conn.execute(f"INSERT INTO campus.{spec.table} SELECT * FROM extra").rowcount == 1


@pytest.mark.parametrize("name", ["Behavior", "CourseCode"])  # an integer key and a text key
def test_a_null_key_at_the_district_is_refused_as_the_sync_refuses_it(synced, graph, name, capsys):
    """The sync refuses a NULL-keyed row as `null_key`; the verification counts it as refused
    (not expected at the state), for the district and through the CLI, and heals nothing."""
    from campus_sync.engine import sync as engine

    spec = graph.spec(name)
    _add_null_key_row(synced["districts"][DISTRICT], spec)
    (result,) = engine.sync_objects(graph, [name], district_id=DISTRICT, source_dsn=synced["districts"][DISTRICT],
                                    state_dsn=synced["state"], scope=engine.Scope(YEAR))
    assert result.error_reasons.get("null_key") == 1

    summary = verify.verify([DISTRICT], user="tester")
    check = by_object(summary)[name]
    assert check["total_errors"] == 0 and check["accuracy"] == 100.0
    assert check["refused"] == result.errors and check["at_district"] == result.processed
    assert check["at_state"] == check["at_district"] - check["refused"]
    assert summary["heal_keys"] == {} and summary["unhealable"] == {}
    healed = verify.heal(summary, user="tester")
    assert healed["batches"] == [] and by_object(healed["summary"])[name]["total_errors"] == 0

    assert cli.main(["verify", "--district", DISTRICT]) == 0
    assert f"Verification Results for {DISTRICT}" in capsys.readouterr().out


def test_a_duplicated_key_at_the_district_is_refused_as_the_sync_refuses_it(synced, graph):
    spec = graph.spec("Behavior")
    with psycopg.connect(synced["districts"][DISTRICT]) as conn:
        _drop_primary_key(conn, spec)
        conn.execute("INSERT INTO campus.behavior SELECT * FROM campus.behavior ORDER BY behaviorid LIMIT 1")
    from campus_sync.engine import sync as engine

    (result,) = engine.sync_objects(graph, [spec.name], district_id=DISTRICT,
                                    source_dsn=synced["districts"][DISTRICT], state_dsn=synced["state"],
                                    scope=engine.Scope(YEAR))
    assert result.error_reasons.get("duplicate_key") == 2
    check = by_object(verify.verify([DISTRICT], user="tester"))["Behavior"]
    assert (check["refused"], check["at_district"]) == (result.errors, result.processed)
    assert check["total_errors"] == 0  # the state keeps its copy of a key the district now duplicates


def test_one_districts_failure_does_not_hold_back_the_others(synced, capsys):
    """A district that cannot be verified is reported for that district; the others' summaries
    are computed and stored in the same run, and the command still fails."""
    with psycopg.connect(synced["districts"]["0101"]) as conn:
        conn.execute("ALTER TABLE campus.plan RENAME COLUMN personid TO person_id")
    with pytest.raises(verify.VerifyError) as err:
        verify.verify(None, user="tester")
    message = str(err.value)
    assert "district 0101" in message and "cannot verify Plan" in message and "0102" in message
    summary = err.value.summary
    assert [d["district_id"] for d in summary["districts"]] == ["0102"]
    assert set(summary["errors"]) == {"0101"} and "cannot verify Plan" in summary["errors"]["0101"]
    with psycopg.connect(synced["state"]) as conn:
        stored = verify.latest(conn)
    assert [d["district_id"] for d in stored["districts"]] == ["0102"] and stored["run_id"] == summary["run_id"]
    (details,) = q(synced["state"], "SELECT details FROM sync.verification_run WHERE id = %s", (summary["run_id"],))[0]
    assert set(details["errors"]) == {"0101"}

    assert cli.main(["verify"]) == 1
    captured = capsys.readouterr()
    assert "Verification Results for 0102" in captured.out
    assert "district 0101" in captured.err and "cannot verify Plan" in captured.err
