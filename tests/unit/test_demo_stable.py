"""The demo data of each object depends only on that object (and its parents' rows): a
deployment that adds an object and reseeds the demo keeps every other object's rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from campus_sync import paths
from campus_sync.demo import data as demo
from campus_sync.config import District
from campus_sync.hierarchy import compile_path

AWARD = """objects:
  - name: Award
    description: A student's award, added by a deployment.
    parents: [PersonIdentity]
    key: [awardID]
    columns: {awardID: int, personID: int, name: text, awardDate: date, points: numeric}
"""


def generate(graph, district: District, index: int) -> tuple[dict, list]:
    gen = demo.Generator(graph, district, index, students=40, seed=7, end_year=2027, state="KY")
    return gen.build(demo._needed(graph, "KY")), gen.attendance


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    """The project's hierarchy plus one object, in a folder of its own (include/ is untouched)."""
    root = tmp_path_factory.mktemp("include")
    shutil.copytree(paths.hierarchy_dir(), root / "hierarchy")
    shutil.copytree(paths.sql_dir(), root / "sql")
    (root / "hierarchy" / "award.yaml").write_text(AWARD)
    (root / "sql" / "extract" / "award.sql").write_text(
        "SELECT awardID, personID, name, awardDate, points, NULL::text AS reject_reason FROM campus.award\n")
    return compile_path(root / "hierarchy", root / "sql")


@pytest.mark.parametrize("index, district", [(0, District("0101", "Abbott Independent", "campus_district_0101")),
                                             (1, District("0102", "Campus County", "campus_district_0102"))])
def test_adding_an_object_leaves_every_other_objects_demo_rows_unchanged(graph, extended, index, district):
    assert "Award" in extended.names and "Award" not in graph.names
    # the new object runs before others of its stage: a shared random sequence would shift theirs
    assert [n for n in extended.names if n != "Award"] == list(graph.names)
    assert extended.names.index("Award") < extended.names.index("Behavior")
    before, attendance_before = generate(graph, district, index)
    after, attendance_after = generate(extended, district, index)
    assert set(after) - set(before) == {"Award"} and after["Award"]
    changed = sorted(n for n in before if before[n] != after[n])
    assert changed == []
    assert attendance_before == attendance_after


def test_the_same_arguments_give_the_same_rows(graph):
    district = District("0101", "Abbott Independent", "campus_district_0101")
    assert generate(graph, district, 0) == generate(graph, district, 0)
    other = demo.Generator(graph, district, 0, students=40, seed=8, end_year=2027, state="KY")
    assert other.build(demo._needed(graph, "KY")) != generate(graph, district, 0)[0]


@pytest.mark.parametrize("state", ["KY", "NV", "BIE"])
@pytest.mark.parametrize("seed", [1, 2, 3, 7, 11, 42])  # 7, 11: the tests' demos; 42: `campus-sync demo seed`
def test_every_enabled_object_has_current_year_rows_whatever_the_seed(graph, state, seed):
    """Each object's own random draws may give a parent no child rows; never an object none."""
    district = District("X01", "Example District", "campus_district_x01")
    gen = demo.Generator(graph, district, 0, students=30, seed=seed, end_year=2027, state=state)
    rows = gen.build(demo._needed(graph, state))
    for name in graph.enabled(state):
        if name == "PersonIdentityNoStateIDOnly":  # read from PersonIdentity by its extract
            continue
        current = [r for r in rows[name] if r.get("endYear", 2027) == 2027]
        assert current, f"{state}, seed {seed}: no current-year {name} rows"
