"""Every validation error, from a bad YAML fixture, names the file, the object and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from campus_sync.hierarchy import HierarchyError, compile_path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BAD = FIXTURES / "bad_hierarchy"


@pytest.mark.parametrize("fixture, expected", [
    ("unknown_parent", ["unknown_parent.yaml", "'School'", "unknown parent 'Distrct'", "did you mean District?"]),
    ("cycle", ["cycle.yaml", "cycle in parents: A -> C -> B -> A"]),
    ("duplicate", ["duplicate.yaml", "'DISTRICT' is declared twice"]),
    ("missing_field", ["missing_field.yaml", "'School'", "missing field 'description'"]),
    ("unknown_field", ["'School'", "unknown field 'parent'", "did you mean parents?"]),
    ("bad_yaml", ["bad_yaml.yaml", "not valid YAML"]),
    ("bad_column_type", ["'School'", "unknown type 'integer'", "did you mean int?"]),
    ("key_not_column", ["key column 'schoolId' is not a declared column", "did you mean schoolID?"]),
    ("scoped_without_endyear", ["'Calendar'", "no 'endYear' column"]),
    ("bad_school_year", ["'Calendar'", "unknown school year 'last'"]),
    ("state_inconsistent", ["'Status'", "ancestor 'ProgramKY' only to KY"]),
    ("year_inconsistent", ["'Enrollment'", "syncs for previous year but its ancestor 'Calendar' does not"]),
    ("bad_selective_key", ["selective_key 'personID' is not a declared column"]),
    ("no_objects_list", ["no_objects_list.yaml", "top-level 'objects:' list"]),
    ("duplicate_key", ["duplicate_key.yaml", "not valid YAML", "duplicate key 'parents' on line 8 (first on line 5)"]),
])
def test_bad_fixture(fixture, expected):
    with pytest.raises(HierarchyError) as err:
        compile_path(BAD / f"{fixture}.yaml")
    text = str(err.value)
    for piece in expected:
        assert piece in text, f"{piece!r} not in {text!r}"


def test_missing_sql_named():
    with pytest.raises(HierarchyError) as err:
        compile_path(FIXTURES / "missing_sql" / "hierarchy")
    assert err.value.problems == [
        f"objects.yaml: object 'School': SQL file extract/school.sql is missing under "
        f"{FIXTURES / 'missing_sql' / 'sql'}"
    ]


def test_all_problems_listed_at_once(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "objects:\n"
        "  - {name: A, description: a, parents: [Nope], key: [id], columns: {id: int}}\n"
        "  - {name: B, parents: [A], key: [id], columns: {id: int}}\n"
        "  - {name: C, description: c, parents: [], key: [x], columns: {id: int}}\n"
    )
    with pytest.raises(HierarchyError) as err:
        compile_path(tmp_path)
    assert len(err.value.problems) == 3


def test_every_bad_fixture_is_tested():
    tested = {p.stem for p in BAD.glob("*.yaml")}
    assert len(tested) == 15
