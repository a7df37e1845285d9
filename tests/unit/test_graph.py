"""Graph queries and plans: order, stages, check-dependencies, school years, states."""

from __future__ import annotations

import pytest

from campus_sync.hierarchy import UnknownObjectError
from campus_sync.hierarchy.errors import SelectionError


def test_run_order_respects_every_edge(graph):
    order = {n: i for i, n in enumerate(graph.names)}
    for n in graph.names:
        for a in graph.ancestors(n):
            assert order[a] < order[n], (a, n)


def test_stages_are_sorted_and_cover_everything(graph):
    stages = graph.stages()
    assert [list(s) for s in stages] == [sorted(s) for s in stages]
    assert sum(len(s) for s in stages) == len(graph)
    assert stages[0] == ("CourseCode", "District", "ISEPResidentialCertification", "ISEPResidentialVerification")


def test_descendants(graph):
    assert set(graph.descendants("Test")) == {"TestScore"}
    assert "Roster" in graph.descendants("StructureGradeLevel")
    assert set(graph.descendants("Enrollment")) == set(graph.children("Enrollment"))
    assert graph.descendants("District")[0] == "ReportingEntity"
    assert len(graph.descendants("District")) == len(graph) - 4


@pytest.mark.parametrize("objects, check, year, state, expected", [
    (["TestScore"], True, "current", None,
     ["District", "School", "Calendar", "ScheduleStructure", "PersonIdentity", "Test", "TestScore"]),
    (["TestScore"], False, "current", None, ["TestScore"]),
    (["TestScore", "Enrollment"], False, "current", None, ["Enrollment", "TestScore"]),
    (["Roster"], True, "current", None,
     ["District", "School", "Calendar", "ScheduleStructure", "PersonIdentity", "StructureGradeLevel",
      "Enrollment", "Roster"]),
    # previous/next year: only ancestors tied to and configured for that year are added
    (["Enrollment"], True, "previous", None, ["Calendar", "ScheduleStructure", "Enrollment"]),
    (["Roster"], True, "next", None,
     ["Calendar", "ScheduleStructure", "Enrollment", "StructureGradeLevel", "Roster"]),
    (["Title1KY"], True, "current", "KY",
     ["District", "School", "Calendar", "ScheduleStructure", "PersonIdentity", "Enrollment", "Title1KY"]),
    (["courseCode"], True, "current", None, ["CourseCode"]),
    (["Calendar", "Calendar", "School"], False, "current", None, ["School", "Calendar"]),
])
def test_plans(graph, objects, check, year, state, expected):
    assert list(graph.plan(objects, check, year, state).objects) == expected


def test_plan_stages_and_added(graph):
    plan = graph.plan(["TestScore", "Day"], check_dependencies=True)
    assert plan.stages[-1] == ("TestScore",)
    assert ("Day", "Test") in plan.stages
    assert plan.requested == ("Day", "TestScore")
    assert "PersonIdentity" in plan.added and "TestScore" not in plan.added


def test_plan_is_deterministic(graph):
    a = graph.plan(["VaccineShot", "Behavior", "Roster", "Form"], True)
    b = graph.plan(["Form", "Roster", "Behavior", "VaccineShot"], True)
    assert a.objects == b.objects and a.stages == b.stages


@pytest.mark.parametrize("objects, year, state, message", [
    (["Bogus"], "current", None, "unknown object 'Bogus'"),
    (["TestScor"], "current", None, "did you mean TestScore?"),
    ([], "current", None, "no objects selected"),
    (["PersonIdentity"], "previous", None, "not tied to a school year"),
    (["Day"], "next", None, "configured for current, previous only"),
    (["Title1KY"], "current", "SD", "does not apply to state SD"),
    (["ReportingEntity"], "current", "MT", "does not apply to state MT"),
    (["Calendar"], "last", None, "unknown school year 'last'"),
])
def test_bad_selections(graph, objects, year, state, message):
    with pytest.raises((SelectionError, UnknownObjectError)) as err:
        graph.plan(objects, True, year, state)
    assert message in str(err.value)


def test_foreign_keys_point_at_ancestors(graph):
    fks = {f.column: f.target for f in graph.spec("Enrollment").foreign_keys}
    assert fks == {"calendarID": "Calendar", "personID": "PersonIdentity", "structureID": "ScheduleStructure"}
    assert {f.target for f in graph.spec("Roster").foreign_keys} == {"Enrollment", "PersonIdentity",
                                                                      "StructureGradeLevel"}
    for n in graph.names:
        for f in graph.spec(n).foreign_keys:
            assert f.target in graph.ancestors(n)


def test_hierarchy_json_shape(graph):
    doc = graph.to_json(["Roster"])
    assert doc == {"objects": [{
        "name": "Roster", "parents": ["StructureGradeLevel", "Enrollment"],
        "ancestors": ["District", "School", "Calendar", "ScheduleStructure", "StructureGradeLevel",
                      "PersonIdentity", "Enrollment"],
        "children": [], "school_year_scoped": True, "selective_key": None, "states": []}]}
