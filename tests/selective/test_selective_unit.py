"""Selective sync input and planning, plain Python (no database, no Airflow run).

Test configuration (tests/conftest.py): state KY, current school year 2026-27, districts 0101/0102.
"""

from __future__ import annotations

import pytest

from campus_sync import config
from campus_sync.tools import selective
from campus_sync.tools import verify
from campus_sync.tools.selective import SelectiveError


@pytest.mark.parametrize("raw, keys", [
    ("3667, 3669", (3667, 3669)),
    ("3669\n3667\n", (3667, 3669)),
    ("  3667   3669,3667 ,\n\n 42", (42, 3667, 3669)),       # duplicates count once
    (["3667", 3669, "3667", "  12 "], (12, 3667, 3669)),      # a list, numbers or digit strings
    (["1 2", "3"], (1, 2, 3)),                                # list items may carry several IDs
    ("007", (7,)),
])
def test_parse_ids(raw, keys):
    assert selective.parse_ids(raw) == keys


@pytest.mark.parametrize("raw, message", [
    ("3667, abc", r"ID 'abc' not a positive whole number"),
    ("12x 3 y7", r"IDs '12x', 'y7' not a positive whole number"),
    ("3667;3669", r"'3667;3669'"),
    ("-5", r"'-5'"),
    ("0", r"'0'"),
    ("99999999999999999999", r"'99999999999999999999'"),
    (["1", None], r"'None'"),
    ([True], r"'True'"),
    ("", "no IDs given"),
    (" , \n", "no IDs given"),
    ([], "no IDs given"),
    (None, "no IDs given"),
    ({"a": 1}, "must be text or a list"),
])
def test_parse_ids_refuses_naming_the_token(raw, message):
    with pytest.raises(SelectiveError, match=message):
        selective.parse_ids(raw)


def test_parse_ids_limit():
    with pytest.raises(SelectiveError, match=f"at most {selective.MAX_IDS}"):
        selective.parse_ids(list(range(1, selective.MAX_IDS + 2)))


def test_plan_person_and_enrollment(graph):
    person = selective.plan(graph, "PersonIdentity", "KY")
    assert person[0] == "PersonIdentity"
    assert "Enrollment" in person and "CustomStudent" in person and "TestScore" in person
    assert "PlanProgressReport" in person and person.index("Plan") < person.index("PlanProgressReport")
    assert "Test" not in person and "Day" not in person          # no personID column
    assert "NASIS" not in person and "AttendanceSDMinute" not in person  # not KY objects
    for name in person:                                           # parents before children
        assert all(person.index(a) < person.index(name) for a in graph.ancestors(name) if a in person)
        assert "personID" in graph.spec(name).column_names
    enrollment = selective.plan(graph, "Enrollment", "KY")
    assert enrollment[0] == "Enrollment"
    assert set(enrollment) == {"Enrollment"} | {
        n for n in graph.descendants("Enrollment")
        if n in graph.enabled("KY") and "enrollmentID" in graph.spec(n).column_names}
    assert "Roster" in enrollment and "Title1KY" in enrollment and "AttDayAggregation" not in enrollment
    with pytest.raises(SelectiveError, match="cannot be synced selectively"):
        selective.plan(graph, "Calendar", "KY")


def test_build_request(graph):
    cfg = config.load()
    req = selective.build_request(graph, cfg, {"object": "enrollment", "ids": "5, 4 5",
                                               "district": "0102 Campus County Public Schools"}, user="u")
    assert (req.object, req.key_column, req.keys, req.district_id, req.end_year) == \
        ("Enrollment", "enrollmentID", (4, 5), "0102", 2027)
    assert req.objects == selective.plan(graph, "Enrollment", "KY")
    unit = req.unit(7)
    assert unit["batch_id"] == 7 and unit["keys"] == [4, 5] and unit["requested_by"] == "u"


@pytest.mark.parametrize("params, message", [
    ({"object": "PersonIdentity", "ids": "1", "district": "9999"}, "unknown district '9999'"),
    ({"object": "PersonIdentity", "ids": "1"}, "choose one district"),
    ({"object": "Calendar", "ids": "1", "district": "0101"}, "'Calendar' cannot be synced selectively"),
    ({"object": "Persn", "ids": "1", "district": "0101"}, "unknown object 'Persn'"),
    ({"ids": "1", "district": "0101"}, "choose an object"),
    ({"object": "PersonIdentity", "ids": "1, x2", "district": "0101"}, "'x2'"),
])
def test_build_request_refuses(graph, params, message):
    with pytest.raises(SelectiveError, match=message):
        selective.build_request(graph, config.load(), params, user="u")


def test_accuracy_rounds_down():
    assert verify.accuracy(0, 0) == 100.0
    assert verify.accuracy(3, 0) == 100.0
    assert verify.accuracy(45, 1) == 97.77
    assert verify.accuracy(4594, 18) == 99.60
    assert verify.accuracy(100_000, 1) == 99.99  # never shows 100.00 with an error
    assert verify.accuracy(2, 2) == 0.0


def test_heal_roots(graph):
    roots = verify.heal_roots(graph, "KY")
    assert roots["PersonIdentity"] == "PersonIdentity" and roots["Behavior"] == "PersonIdentity"
    assert roots["Enrollment"] == "Enrollment" and roots["CustomStudent"] == "Enrollment"
    assert "School" not in roots and "Test" not in roots


def test_trigger_form_schema():
    """The DAG's Param schema refuses at trigger time what it can express."""
    from airflow.sdk.exceptions import ParamValidationError

    from campus_sync.orchestration.selective_dags import selective_params

    params = selective_params()
    ids = params["ids"]
    for good in ("3667, 3669", "3667\n3669\n", ["3667", 3669]):
        assert ids.resolve(good) == good
    for bad, shown in (("", "non-empty"), ([], "non-empty"), ([0], "less than the minimum of 1")):
        with pytest.raises(ParamValidationError, match=shown):
            ids.resolve(bad)
    # malformed tokens pass the form and are refused by the first task, naming just the token
    for bad, shown in (("12, abc", "'abc'"), ("0 7", "'0'"), (["x"], "'x'")):
        with pytest.raises(selective.SelectiveError, match=shown):
            selective.parse_ids(ids.resolve(bad))
    assert params["object"].resolve("Enrollment") == "Enrollment"
    with pytest.raises(ParamValidationError):
        params["object"].resolve("Calendar")
    with pytest.raises(ParamValidationError, match="9999"):
        params["district"].resolve("9999")
    with pytest.raises(ParamValidationError):  # required: no default
        params["district"].resolve()
