"""The declared hierarchy against the seed documents (the contract for check-dependencies)."""

from __future__ import annotations

import pytest

from seed_table import parent_columns

SEED_TABLE = parent_columns()
SEED_003 = ["AttendanceExcuse", "AttDayAggregation", "SchoolMonth", "TermSchedule", "PeriodSchedule",
            "BehaviorResolutionType", "BehaviorResponseType", "AdultEd", "ALPSS", "AtRisk"]


def test_seed_table_parsed_whole():
    assert len(SEED_TABLE) == 55
    assert {"CourseCode", "CTEDataME", "ISEPResidentialCertification", "ISEPResidentialVerification",
            "PersonIdentityNoStateIDOnly", "ReportingEntity", "VaccineShot"} <= set(SEED_TABLE)


def test_every_object_is_declared(graph):
    declared = set(graph.names)
    assert set(SEED_TABLE) <= declared
    assert set(SEED_003) <= declared
    assert "Evaluation" in declared
    assert len(declared) == 55 + len(SEED_003) + 1


@pytest.mark.parametrize("name", sorted(SEED_TABLE))
def test_ancestors_equal_parent_objects_column(graph, name):
    assert list(graph.ancestors(name)) == SEED_TABLE[name]


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
