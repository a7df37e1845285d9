"""Demo rows of the district-side Ed-Fi tables (include/sql/edfi/district_tables.sql).

The Campus hierarchy carries schools, calendars, people and enrollments, but not what the Ed-Fi
Resync also needs: Ed-Fi IDs, terms, courses, sections, rosters and staff assignments. This
module derives them from a seeded district's Campus rows, deterministically (same Campus rows
and district → same rows): most people get an Ed-Fi ID, a few do not (they are counted under
`no_edfi_id`, never sent).
"""

from __future__ import annotations

import datetime as dt
import random

import psycopg

from campus_sync import paths

# Courses every calendar offers: (Campus number prefix, name, Campus subject code).
COURSES = (("MATH", "Mathematics", "MATH"), ("ELA", "English Language Arts", "ELA"),
           ("SCI", "Science", "SCI"), ("SS", "Social Studies", "SS"))
NO_EDFI_ID_SHARE = 0.05  # students without an Ed-Fi ID (at least one per district)
ID_BASE = 70_000_000


def district_ddl() -> str:
    return (paths.sql_dir() / "edfi" / "district_tables.sql").read_text(encoding="utf-8")


def seed(conn: psycopg.Connection, district_id: str) -> dict[str, int]:
    """Replace the campus_edfi rows of a seeded district; rows written per table."""
    rng = random.Random(f"edfi:{district_id}")
    conn.execute(district_ddl())
    calendars = conn.execute(
        "SELECT calendarid, schoolid, endyear, startdate, enddate FROM campus.calendar"
        " WHERE NOT coalesce(stateexclude, false) ORDER BY calendarid").fetchall()
    named = [(int(r[0]), str(r[1])) for r in conn.execute("SELECT schoolid, name FROM campus.school ORDER BY schoolid")]
    schools = [s for s, _ in named]
    people = [r[0] for r in conn.execute("SELECT personid FROM campus.personidentity ORDER BY personid")]
    enrolled = {r[0] for r in conn.execute("SELECT DISTINCT personid FROM campus.enrollment")}
    enrollments = conn.execute(
        "SELECT e.personid, e.calendarid FROM campus.enrollment e JOIN campus.calendar c USING (calendarid)"
        " WHERE NOT coalesce(e.stateexclude, false) AND NOT coalesce(c.stateexclude, false)"
        " ORDER BY e.enrollmentid").fetchall()
    counter = iter(range(ID_BASE + 1, ID_BASE + 10_000_000))

    students = [p for p in people if p in enrolled]
    staff = [p for p in people if p not in enrolled]
    missing = {p for p in students if rng.random() < NO_EDFI_ID_SHARE}
    if students and not missing:
        missing.add(students[min(2, len(students) - 1)])
    ids = [(p, None if p in missing else f"{district_id}{p}") for p in people]

    assignments = []
    by_school: dict[int, list[int]] = {s: [] for s in schools}
    for i, p in enumerate(staff):
        school = schools[i % len(schools)] if schools else None
        if school is None:
            break
        by_school[school].append(p)
        assignments.append((next(counter), p, school, "TCH", dt.date(2000, 8, 1), None))

    terms, courses, sections, rosters = [], [], [], []
    sections_of: dict[int, list[tuple[int, dt.date]]] = {}  # calendar → first-term sections
    for cal, school, end_year, start, end in calendars:
        fall = (next(counter), cal, "Fall Semester", "S1", start, dt.date(end_year - 1, 12, 20), 85)
        spring = (next(counter), cal, "Spring Semester", "S2", dt.date(end_year, 1, 5), end, 90)
        terms += [fall, spring]
        teachers = by_school.get(school) or [None]
        for n, (prefix, name, subject) in enumerate(COURSES):
            course = next(counter)
            courses.append((course, cal, f"{prefix}{(school % 100):02d}", name, subject))
            for term in (fall, spring):
                section = next(counter)
                sections.append((section, course, term[0], f"{n + 1:02d}", teachers[n % len(teachers)], term[4]))
                if term is fall:
                    sections_of.setdefault(cal, []).append((section, term[4]))
    for person, cal in enrollments:
        for section, begin in rng.sample(sections_of.get(cal, []), k=min(2, len(sections_of.get(cal, [])))):
            rosters.append((next(counter), section, person, begin, None))

    tables = {
        "person_edfi_id": ("personid, edfiid", ids),
        "term": ("termid, calendarid, name, termcode, startdate, enddate, instructionaldays", terms),
        "course": ("courseid, calendarid, number, name, subjectcode", courses),
        "section": ("sectionid, courseid, termid, number, teacherpersonid, startdate", sections),
        "roster": ("rosterid, sectionid, personid, startdate, enddate", rosters),
        "staff_assignment": ("assignmentid, personid, schoolid, classificationcode, startdate, enddate", assignments),
    }
    with conn.transaction():
        for name, (cols, rows) in tables.items():
            conn.execute(f"TRUNCATE campus_edfi.{name}")  # names from the dict above, not input
            with conn.cursor().copy(f"COPY campus_edfi.{name} ({cols}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row)
    from campus_sync.edfi.request import write_school_cache

    write_school_cache(district_id, named)  # the resync form's school names, without a database
    return {name: len(rows) for name, (_, rows) in tables.items()}


def run_demo_resync(configuration: str = "demo", *, user: str = "demo") -> dict:
    """The demo's last step: start the local Ed-Fi API (left running) and resync every school of
    the configuration into it; the request's summary (per-resource results)."""
    from campus_sync.edfi import resync
    from campus_sync.edfi.api.server import LocalEdFiApi

    LocalEdFiApi().start(timeout=120)
    return resync.run({"configuration": configuration, "all_schools": True}, user=user)
