"""The declared hierarchy against Campus's documented hierarchy (the contract for check-dependencies).

The documented table (Resync Object -> Parent Objects) is kept as a fixture in
tests/fixtures/campus_object_hierarchies.yaml, inside the repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

TABLE_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "campus_object_hierarchies.yaml"
DOCUMENTED = yaml.safe_load(TABLE_FILE.read_text(encoding="utf-8"))["parent_objects"]
# Objects the attendance batch resync screen lists, beyond the documented table.
ATTENDANCE_SCREEN = ["AttendanceExcuse", "AttDayAggregation", "SchoolMonth", "TermSchedule", "PeriodSchedule",
                     "BehaviorResolutionType", "BehaviorResponseType", "AdultEd", "ALPSS", "AtRisk"]


def test_documented_table_is_whole():
    assert TABLE_FILE.resolve().is_relative_to(Path(__file__).resolve().parents[2])
    assert len(DOCUMENTED) == 55
    assert {"CourseCode", "CTEDataME", "ISEPResidentialCertification", "ISEPResidentialVerification",
            "PersonIdentityNoStateIDOnly", "ReportingEntity", "VaccineShot"} <= set(DOCUMENTED)
    assert all(isinstance(p, list) and all(isinstance(x, str) for x in p) for p in DOCUMENTED.values())


def test_every_documented_object_is_declared(graph):
    """Every documented object is declared; a deployment may declare more of its own."""
    declared = set(graph.names)
    assert set(DOCUMENTED) <= declared
    assert set(ATTENDANCE_SCREEN) <= declared
    assert "Evaluation" in declared


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_ancestors_equal_parent_objects_column(graph, name):
    assert list(graph.ancestors(name)) == DOCUMENTED[name]


@pytest.mark.parametrize("name, parents", [
    ("Day", ("PersonIdentity",)),            # not ScheduleStructure, despite ScheduleStructure's Day*
    ("TeamMember", ("PersonIdentity",)),     # not Enrollment, despite Enrollment's TeamMember*
    ("Roster", ("StructureGradeLevel", "Enrollment")),
    ("ReportingEntity", ("District",)),      # and School does not wait on it
    ("School", ("District",)),
    ("Evaluation", ("Enrollment",)),
    ("TestScore", ("Test",)),
])
def test_contradictions_follow_parent_objects_column(graph, name, parents):
    assert graph.parents(name) == parents


def test_immediate_parents_only(graph):
    """No declared parent is already an ancestor through another declared parent."""
    for name in graph.names:
        parents = graph.parents(name)
        for p in parents:
            others = [q for q in parents if q != p]
            assert not any(p in graph.ancestors(q) for q in others), (name, p)


def test_selective_keys_and_states(graph):
    assert graph.spec("PersonIdentity").selective_key == "personID"
    assert graph.spec("Enrollment").selective_key == "enrollmentID"
    assert graph.spec("Title1KY").states == ("KY",)
    assert graph.spec("AttendanceSDMinute").states == ("SD",)
    assert graph.spec("CTEDataME").states == ("ME",)
    assert not graph.spec("ReportingEntity").applies_to("MT")
    assert graph.spec("PersonIdentity").states == ()


def test_every_object_has_description_key_and_sql(graph):
    for name in graph.names:
        spec = graph.spec(name)
        assert spec.description and spec.key
        assert (graph.sql_root / spec.sql).is_file()
