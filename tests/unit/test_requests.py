"""requests.build: a DAG run's form (params) → a validated Request, or RequestError naming the problem.

Plain Python (no database, no Airflow). The test configuration (tests/conftest.py) is state KY,
current school year 2026-27 (end year 2027), districts 0101 and 0102.
"""

from __future__ import annotations

import pytest

from campus_sync import config
from campus_sync.tools import requests
from campus_sync.tools.requests import RequestError

ANCESTORS_OF_TESTSCORE = ["District", "School", "Calendar", "ScheduleStructure", "PersonIdentity", "Test"]


@pytest.fixture(scope="module")
def cfg():
    cfg = config.load()
    assert cfg.state == "KY" and cfg.current_school_year == 2027 and cfg.district_ids == ("0101", "0102")
    return cfg


def build(graph, cfg, kind="partial", user="someone", **params):
    return requests.build(graph, cfg, params, kind=kind, user=user)


@pytest.mark.parametrize("params, objects, requested, end_year", [
    # check dependencies (the default): every ancestor, in run order
    ({"objects": ["TestScore"]}, ANCESTORS_OF_TESTSCORE + ["TestScore"], ["TestScore"], 2027),
    ({"objects": ["TestScore"], "check_dependencies": True}, ANCESTORS_OF_TESTSCORE + ["TestScore"],
     ["TestScore"], 2027),
    # without: exactly the selection, still parents first
    ({"objects": ["TestScore"], "check_dependencies": False}, ["TestScore"], ["TestScore"], 2027),
    ({"objects": ["Roster", "Calendar"], "check_dependencies": False}, ["Calendar", "Roster"],
     ["Calendar", "Roster"], 2027),
    # several objects share ancestors once
    ({"objects": ["Roster", "TestScore"]},
     ["District", "School", "Calendar", "ScheduleStructure", "PersonIdentity", "StructureGradeLevel",
      "Enrollment", "Test", "Roster", "TestScore"], ["Roster", "TestScore"], 2027),
    # previous / next year: only ancestors tied to and configured for that year are added
    ({"objects": ["Roster"], "school_year": "previous"},
     ["Calendar", "ScheduleStructure", "Enrollment", "StructureGradeLevel", "Roster"], ["Roster"], 2026),
    ({"objects": ["Behavior"], "school_year": "previous", "check_dependencies": False}, ["Behavior"],
     ["Behavior"], 2026),
    ({"objects": ["Enrollment"], "school_year": "next"}, ["Calendar", "ScheduleStructure", "Enrollment"],
     ["Enrollment"], 2028),
    # forgiving spellings the first task accepts (the Param schema is stricter)
    ({"objects": "TestScore, Test", "check_dependencies": False}, ["Test", "TestScore"],
     ["Test", "TestScore"], 2027),
    ({"objects": ["testscore", "TestScore"], "check_dependencies": False}, ["TestScore"], ["TestScore"], 2027),
    ({"objects": ["Enrollment"], "school_year": None, "check_dependencies": False}, ["Enrollment"],
     ["Enrollment"], 2027),
])
def test_partial_plans(graph, cfg, params, objects, requested, end_year):
    req = build(graph, cfg, **params)
    assert list(req.objects) == objects
    assert list(req.requested) == requested
    assert req.end_year == end_year
    assert req.school_year == (params.get("school_year") or "current")
    assert req.check_dependencies is params.get("check_dependencies", True)
    assert req.kind == "partial" and req.requested_by == "someone"
    assert req.districts == ("0101", "0102")  # none chosen: every configured district


@pytest.mark.parametrize("raw, expected", [
    ([], ("0101", "0102")),
    (None, ("0101", "0102")),
    (["0102"], ("0102",)),
    ("0102", ("0102",)),
    (["0102", "0101", "0102"], ("0101", "0102")),
    (["0101 Abbott Independent"], ("0101",)),
])
def test_districts(graph, cfg, raw, expected):
    assert build(graph, cfg, objects=["District"], districts=raw).districts == expected


def test_state_request_kind_and_full_kind(graph, cfg):
    req = build(graph, cfg, kind="state_request", objects=["Enrollment"], requested_by="state",
                districts=["0102"])
    assert (req.kind, req.districts, req.objects[-1]) == ("state_request", ("0102",), "Enrollment")
    assert req.to_dict()["kind"] == "state_request"
    full = build(graph, cfg, kind="full", objects=["TestScore"], check_dependencies=False)
    assert full.objects == graph.enabled("KY") and full.check_dependencies is True
    assert 0 < len(full.objects) < len(graph.names)  # objects declared only for other states are left out


@pytest.mark.parametrize("params, message", [
    ({"objects": ["Bogus"]}, "unknown object 'Bogus'"),
    ({"objects": ["TestScor"]}, "did you mean TestScore?"),
    ({"objects": []}, "no objects selected"),
    ({}, "no objects selected"),
    ({"objects": ""}, "no objects selected"),
    ({"objects": {"TestScore": True}}, "no objects selected"),
    ({"objects": ["TestScore"], "districts": ["0999"]}, "unknown district '0999'; configured: 0101, 0102"),
    ({"objects": ["TestScore"], "districts": {"0101": True}}, "districts must be a list"),
    ({"objects": ["TestScore"], "school_year": "previous"},
     "object 'TestScore' is not offered for the previous school year: it is not tied to a school year"),
    ({"objects": ["Enrollment", "PersonIdentity"], "school_year": "next"},
     "object 'PersonIdentity' is not offered for the next school year"),
    ({"objects": ["Behavior"], "school_year": "next"},
     "object 'Behavior' is not offered for the next school year: it is configured for current, previous only"),
    ({"objects": ["AttDayAggregation"]}, "object 'AttDayAggregation' does not apply to state KY"),
    ({"objects": ["TestScore"], "school_year": "last"}, "unknown school_year 'last'"),
    ({"objects": ["TestScore"], "check_dependencies": "yes"}, "check_dependencies must be true or false, got 'yes'"),
    ({"objects": ["TestScore"], "requested_by": "county"}, "unknown requested_by 'county'"),
])
def test_refused(graph, cfg, params, message):
    with pytest.raises(RequestError) as err:
        build(graph, cfg, **params)
    assert message in str(err.value)


@pytest.mark.parametrize("year", ["previous", "next"])
def test_every_object_offered_or_refused_for_year(graph, cfg, year):
    """The form offers every enabled object; for previous/next only the year's objects plan."""
    offered = set(graph.enabled("KY", year))
    assert offered and offered < set(graph.enabled("KY"))
    for name in graph.enabled("KY"):
        if name in offered:
            req = build(graph, cfg, objects=[name], school_year=year)
            assert req.objects[-1] == name
            assert all(graph.spec(o).offered_for(year) for o in req.objects)
        else:
            with pytest.raises(RequestError, match=f"object '{name}' is not offered for the {year} school year"):
                build(graph, cfg, objects=[name], school_year=year, check_dependencies=False)
