"""Deterministic, Campus-like demo data for district databases (`campus-sync demo seed`).

Same arguments → same rows. Every object enabled for the configured state gets rows, and the
data includes what the state must refuse: a state-excluded calendar, grade level and a few
enrollments, test scores breaking each of the six TestScore batch-sync requirements, and a few
orphans (rows whose person does not exist, in `ORPHAN_OBJECTS` only).

Everything else lines up, as in a real district: a row's calendar, structure and grade level
belong to its own school year, and rows hang only off parent rows the state accepts. So a full
resync shows mostly green, yellow where an orphan or a test-score rule is refused, and red only
where the state's exclusions bite (Calendar, ScheduleStructure, StructureGradeLevel, Enrollment).

Rows are generated generically from the hierarchy: each object is driven by its last declared
parent (one or a few rows per parent row) and copies the columns it shares with that parent
(personID, calendarID, endYear, ...). Only the rule-bearing objects are special-cased.

Each object draws from its own random sequence (seeded by the demo seed, district and object
name) and numbers its own keys, so adding an object to the hierarchy and reseeding leaves every
other object's rows as they were.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

import psycopg
from psycopg import sql

from campus_sync.config import Config, District
from campus_sync.edfi import demo_data as edfi_demo_data
from campus_sync.hierarchy import Hierarchy, ObjectSpec
from campus_sync.engine.schema import DISTRICT_SCHEMA, ensure_district_schema, ident, table

FIRST = ["Ava", "Liam", "Mia", "Noah", "Emma", "Elijah", "Olivia", "Lucas", "Sophia", "Mason",
         "Isabella", "Logan", "Amelia", "Ethan", "Harper", "Aiden", "Evelyn", "Jacob", "Abigail", "Wyatt"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson",
        "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White"]
GRADES = ["KG", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12"]
ORPHAN_PERSON = 99_000_001  # a personID no district row has
# Objects that get one orphan row (personID ORPHAN_PERSON) per district: "a few orphans".
ORPHAN_OBJECTS = ("ContactLog", "Enrollment", "Transportation")
ATTENDANCE_DAYS = 10  # school days of daily attendance per enrollment (two periods each)
ATTENDANCE_COLUMNS = ("attendanceID", "enrollmentID", "personID", "calendarID", "endYear", "date", "periodID",
                      "scheduledMinutes", "presentMinutes", "status", "excuseID")
Row = dict[str, object]


class Generator:
    """Builds every table of one district in memory (demo sizes), parents first."""

    def __init__(self, graph: Hierarchy, district: District, index: int, students: int,
                 seed: int, end_year: int, state: str):
        self.g = graph
        self.d = district
        self.seed = seed
        self.rng = self._rng_for("")
        self.students = students
        self.years = (end_year - 1, end_year)
        self.end_year = end_year
        self.state = state
        self.base = (index + 1) * 1_000_000
        self.rows: dict[str, list[Row]] = {}
        self.attendance: list[Row] = []  # campus.attendance (district-only, see attdayaggregation)
        self._next: dict[str, int] = {}
        # single-column keys of each object's rows, and those the state refuses (by its rules or
        # because a parent is refused or missing): children hang only off accepted rows
        self.keys: dict[str, set] = {}
        self.refused: dict[str, set] = {}

    def _rng_for(self, name: str) -> random.Random:
        """The random source of one object: seeded by the demo seed, the district and the
        object's name (a string seed is hashed with SHA-512, the same in every process), so an
        object's rows do not depend on which other objects the hierarchy declares."""
        return random.Random(f"{self.seed}:{self.d.id}:{name}")

    def next_id(self, name: str) -> int:
        self._next[name] = self._next.get(name, 0) + 1
        return self.base + self._next[name]

    def date_in(self, end_year: int) -> dt.date:
        return dt.date(end_year - 1, 8, 15) + dt.timedelta(days=self.rng.randrange(0, 290))

    # ---------------------------------------------------------------- special objects
    def district(self) -> list[Row]:
        return [{"districtID": int(self.d.id) if self.d.id.isdigit() else 1, "number": self.d.id,
                 "name": self.d.name, "stateCode": self.state}]

    def school(self) -> list[Row]:
        kinds = [("Elementary", "E"), ("Middle", "M"), ("High", "H")]
        return [{"schoolID": self.next_id("School"), "number": f"{self.d.id}{i:02d}",
                 "name": f"{self.d.name.split()[0]} {label} School", "type": code, "stateExclude": False}
                for i, (label, code) in enumerate(kinds, start=1)]

    def calendar(self) -> list[Row]:
        out = []
        for s in self.rows["School"]:
            for y in self.years:
                out.append({"calendarID": self.next_id("Calendar"), "schoolID": s["schoolID"], "endYear": y,
                            "name": f"{y - 1}-{str(y)[2:]} {s['name']}", "startDate": dt.date(y - 1, 8, 15),
                            "endDate": dt.date(y, 6, 1), "stateExclude": False})
        summer = self.rows["School"][-1]  # the state does not take summer-school calendars
        out.append({"calendarID": self.next_id("Calendar"), "schoolID": summer["schoolID"],
                    "endYear": self.end_year, "name": f"{self.end_year} Summer School", "startDate":
                    dt.date(self.end_year, 6, 5), "endDate": dt.date(self.end_year, 6, 30), "stateExclude": True})
        return out

    def schedulestructure(self) -> list[Row]:
        return [{"structureID": self.next_id("ScheduleStructure"), "calendarID": c["calendarID"],
                 "endYear": c["endYear"], "name": "Main", "active": True} for c in self.rows["Calendar"]]

    def structuregradelevel(self) -> list[Row]:
        out = []
        school_type = {s["schoolID"]: s["type"] for s in self.rows["School"]}
        cal = {c["calendarID"]: c for c in self.rows["Calendar"]}
        for ss in self.rows["ScheduleStructure"]:
            kind = school_type[cal[ss["calendarID"]]["schoolID"]]
            grades = {"E": GRADES[:6], "M": GRADES[6:9], "H": GRADES[9:]}[kind]
            if kind == "E":
                grades = ["PS"] + grades  # preschool: a state-excluded grade level
            for gname in grades:
                out.append({"gradeLevelID": self.next_id("StructureGradeLevel"), "structureID": ss["structureID"],
                            "calendarID": ss["calendarID"], "endYear": ss["endYear"], "name": gname,
                            "stateGrade": gname, "stateExclude": gname == "PS"})
        return out

    def personidentity(self) -> list[Row]:
        out = []
        for i in range(self.students + max(3, self.students // 10)):  # students, then staff
            out.append({"personID": self.next_id("PersonIdentity"),
                        "stateID": None if self.rng.random() < 0.03 else f"{self.rng.randrange(10**9, 10**10)}",
                        "lastName": self.rng.choice(LAST), "firstName": self.rng.choice(FIRST),
                        "middleName": self.rng.choice(FIRST) if self.rng.random() < 0.5 else None,
                        "gender": self.rng.choice("MF"),
                        "birthDate": dt.date(self.end_year - 6 - self.rng.randrange(0, 13), 1, 1)
                        + dt.timedelta(days=self.rng.randrange(365)),
                        "raceEthnicity": self.rng.choice(["1", "2", "3", "4", "5", "6", "7"])})
        if all(p["stateID"] for p in out):  # small demos too: PersonIdentityNoStateIDOnly gets a row
            out[1]["stateID"] = None
        return out

    def enrollment(self) -> list[Row]:
        out = []
        people = self.rows["PersonIdentity"][: self.students]
        by_cal: dict[int, list[Row]] = {}
        for g in self.rows["StructureGradeLevel"]:
            by_cal.setdefault(g["calendarID"], []).append(g)
        cals = [c for c in self.rows["Calendar"] if not c["stateExclude"]]
        for p in people:
            for y in self.years:
                c = self.rng.choice([c for c in cals if c["endYear"] == y])
                levels = by_cal[c["calendarID"]]
                g = self.rng.choice(levels[1:] if levels[0]["name"] == "PS" and self.rng.random() > 0.05 else levels)
                out.append(self._enrollment(p["personID"], c, g, excluded=self.rng.random() < 0.01))
        summer = next(c for c in self.rows["Calendar"] if c["stateExclude"])
        summer_levels = [g for g in self.rows["StructureGradeLevel"] if g["calendarID"] == summer["calendarID"]]
        for p in people[:3]:  # enrollments in the state-excluded summer calendar
            out.append(self._enrollment(p["personID"], summer, summer_levels[-1], excluded=False))
        current = next(c for c in cals if c["endYear"] == self.end_year)
        out.append(self._enrollment(ORPHAN_PERSON, current, by_cal[current["calendarID"]][-1], False))
        return out

    def _enrollment(self, person: int, cal: Row, grade: Row, excluded: bool) -> Row:
        start = cal["startDate"]
        return {"enrollmentID": self.next_id("Enrollment"), "personID": person,
                "calendarID": cal["calendarID"], "structureID": grade["structureID"], "endYear": cal["endYear"],
                "grade": grade["name"], "serviceType": "P" if self.rng.random() > 0.05 else "S",
                "startDate": start, "startStatus": "E1", "endDate": None if cal["endYear"] == self.end_year
                else cal["endDate"], "endStatus": None if cal["endYear"] == self.end_year else "W1",
                "stateExclude": excluded}

    def test(self) -> list[Row]:
        y = self.end_year
        specs = [  # (name, stateCode, nationalCode, published, locked, endYear)
            ("State Reading", "SR", None, True, False, y), ("State Math", "SM", None, True, False, y),
            ("ACT", None, "ACT", True, False, None), ("Local Benchmark", None, None, True, False, y),
            ("Draft Science", "SS", None, False, False, y), ("Locked Writing", "SW", None, True, True, y),
            ("Old Social Studies", "SO", None, True, False, y - 4),
        ]
        return [{"testID": self.next_id("Test"), "name": n, "stateCode": sc, "nationalCode": nc,
                 "published": pub, "editNotAvailable": locked, "endYear": ey}
                for n, sc, nc, pub, locked, ey in specs]

    def testscore(self) -> list[Row]:
        t = {x["name"]: x for x in self.rows["Test"]}
        enrolled = sorted({e["personID"] for e in self.rows["Enrollment"]
                           if e["endYear"] == self.end_year and not e["stateExclude"] and e["personID"] != ORPHAN_PERSON})
        staff = [p["personID"] for p in self.rows["PersonIdentity"][self.students:]]
        out: list[Row] = []

        def score(test: Row, person: int, date: dt.date | None, parent: int | None = None) -> None:
            out.append({"scoreID": self.next_id("TestScore"), "testID": test["testID"], "personID": person,
                        "parentScoreID": parent, "date": date,
                        "scaleScore": round(self.rng.uniform(100, 300), 1), "result": self.rng.choice("PNAD")})
        for p in enrolled:
            score(t["State Reading"], p, self.date_in(self.end_year))
            if self.rng.random() < 0.5:
                score(t["State Math"], p, self.date_in(self.end_year))
        score(t["ACT"], enrolled[0], self.date_in(self.end_year))
        # one score breaking each of the six batch-sync requirements, in the engine's order:
        score(t["Local Benchmark"], enrolled[1], self.date_in(self.end_year))     # 1 no state/national code
        score(t["Draft Science"], enrolled[2], self.date_in(self.end_year))       # 2 not published
        score(t["ACT"], enrolled[3], None)                                        # 3 undated root, no end year
        score(t["Old Social Studies"], enrolled[4], self.date_in(self.end_year - 4))  # 4 out of scope year
        score(t["Locked Writing"], enrolled[5], self.date_in(self.end_year))      # 5 district-locked
        score(t["State Reading"], staff[0], self.date_in(self.end_year))          # 6 not enrolled
        return out

    def attdayaggregation(self) -> list[Row]:
        """Daily attendance (two periods a day, the first ATTENDANCE_DAYS weekdays of each calendar)
        for every enrollment the state accepts, and AttDayAggregation as the district's nightly job
        left it: in step with the daily records, so the first refresh changes nothing."""
        excuses: dict[int, list[int]] = {}
        for x in self.rows.get("AttendanceExcuse", []):
            excuses.setdefault(x["calendarID"], []).append(x["excuseID"])
        cal = {c["calendarID"]: c for c in self.rows["Calendar"]}
        excluded_grades = {(g["structureID"], g["name"]) for g in self.rows["StructureGradeLevel"] if g["stateExclude"]}
        out: list[Row] = []
        for e in self.rows["Enrollment"]:  # the rules of include/sql/extract/enrollment.sql
            c = cal[e["calendarID"]]
            if e["stateExclude"] or c["stateExclude"] or e["personID"] == ORPHAN_PERSON \
                    or (e["structureID"], e["grade"]) in excluded_grades:
                continue
            day, days = c["startDate"], 0
            while days < ATTENDANCE_DAYS:
                if day.weekday() < 5:
                    days += 1
                    present = absent = 0
                    excuse = None
                    for period in (1, 2):
                        roll = self.rng.random()
                        status, minutes = ("A", 0) if roll < 0.06 else ("T", 180 - self.rng.randrange(5, 40)) \
                            if roll < 0.09 else ("P", 180)
                        ex = self.rng.choice(excuses[c["calendarID"]]) if status == "A" and \
                            excuses.get(c["calendarID"]) and self.rng.random() < 0.7 else None
                        self.attendance.append({
                            "attendanceID": self.next_id("Attendance"), "enrollmentID": e["enrollmentID"],
                            "personID": e["personID"], "calendarID": c["calendarID"], "endYear": e["endYear"],
                            "date": day, "periodID": period, "scheduledMinutes": 180, "presentMinutes": minutes,
                            "status": status, "excuseID": ex})
                        present += minutes
                        absent += 180 - minutes
                        excuse = excuse or ex
                    out.append({"aggregationID": self.next_id("AttDayAggregation"), "enrollmentID": e["enrollmentID"],
                                "personID": e["personID"], "calendarID": c["calendarID"], "endYear": e["endYear"],
                                "date": day, "minutesPresent": present, "minutesAbsent": absent, "excuseID": excuse})
                day += dt.timedelta(days=1)
        return out

    # ---------------------------------------------------------------- generic objects
    def accepted(self, name: str, row: Row) -> bool:
        """Whether the state takes this (already generated) row of `name`."""
        key = self.g.spec(name).key
        return len(key) != 1 or row[key[0]] not in self.refused.get(name, set())

    def _classify(self, name: str) -> None:
        """Record the keys of `name`'s rows and which of them the state refuses."""
        spec = self.g.spec(name)
        rows = self.rows[name]
        if len(spec.key) != 1:
            return
        k = spec.key[0]
        self.keys[name] = {r[k] for r in rows}
        excluded_levels = {(g["structureID"], g["name"]) for g in self.rows.get("StructureGradeLevel", [])
                           if g["stateExclude"]}
        refused = set()
        for r in rows:
            bad = name in ("Calendar", "StructureGradeLevel", "Enrollment") and bool(r.get("stateExclude"))
            if name == "Enrollment" and (r["structureID"], r["grade"]) in excluded_levels:
                bad = True  # the extract refuses an enrollment in an excluded grade level
            for f in spec.foreign_keys:
                value = r.get(f.column)
                if value is not None and (value not in self.keys.get(f.target, {value})
                                          or value in self.refused.get(f.target, set())):
                    bad = True
            if bad:
                refused.add(r[k])
        self.refused[name] = refused

    def generic(self, spec: ObjectSpec) -> list[Row]:
        driver = spec.parents[-1] if spec.parents else None
        parents = self.rows.get(driver, [{}]) if driver else [{}]
        if driver:
            parents = [p for p in parents if self.accepted(driver, p)] or parents
        if driver == "PersonIdentity" and "personID" in spec.column_names and spec.name != "Test":
            staff = spec.name.startswith("Employment")  # staff records: the people after the students
            parents = parents[self.students:] if staff else parents[: self.students]
        if driver and self.g.spec(driver).school_year_scoped and not spec.school_year_scoped:
            parents = [p for p in parents if p.get("endYear") == self.end_year]  # current year only
        same_key = driver is not None and spec.key == self.g.spec(driver).key
        out: list[Row] = []
        for prow in parents:
            n = 1 if same_key or not driver else self.rng.choice([0, 1, 1, 2])
            for _ in range(n):
                out.append(self._row(spec, prow))
        if not any(r.get("endYear", self.end_year) == self.end_year for r in out):
            # every object has a row the current school year syncs, whatever the draws above
            current = [p for p in parents if p.get("endYear", self.end_year) == self.end_year] or parents
            out.append(self._row(spec, current[0]))
        if spec.name in ORPHAN_OBJECTS and "personID" in spec.column_names:
            out.append(self._row(spec, {**parents[0], "personID": ORPHAN_PERSON}))  # an orphan
        return out

    def _row(self, spec: ObjectSpec, parent: Row) -> Row:
        row: Row = {}
        end_year = parent.get("endYear") or self.end_year
        for col, typ in spec.columns:
            if col in spec.key and typ == "int" and len(spec.key) == 1 and col not in parent:
                row[col] = self.next_id(spec.name)
            elif col in parent:
                row[col] = parent[col]
            elif any(f.column == col for f in spec.foreign_keys):
                target = next(f.target for f in spec.foreign_keys if f.column == col)
                pool = self.rows[target]
                # the same school year, calendar and structure as the parent and the columns
                # already chosen (a current-year Day gets a current-year calendar and one of
                # that calendar's structures), and a row the state accepts
                known = {**parent, **row, "endYear": end_year}
                shared = [k for k in ("structureID", "calendarID", "endYear") if k in known and k in pool[0]]
                fits = [r for r in pool if all(r[k] == known[k] for k in shared) and self.accepted(target, r)]
                row[col] = self.rng.choice(fits or pool)[col]
            elif col == "endYear":
                row[col] = end_year
            else:
                row[col] = self._value(col, typ, end_year)
        return row

    def _value(self, col: str, typ: str, end_year: int) -> object:
        r = self.rng
        if typ in ("int", "bigint"):
            return r.randrange(1, 500)
        if typ == "numeric":
            return round(r.uniform(0, 180), 2)
        if typ == "bool":
            return r.random() < 0.2
        if typ == "date":
            return None if col.lower().startswith(("end", "exit", "expiration")) and r.random() < 0.6 \
                else self.date_in(end_year)
        if typ == "timestamp":
            return dt.datetime.combine(self.date_in(end_year), dt.time(8, r.randrange(60)))
        if col.lower().endswith("name"):
            return f"{r.choice(FIRST)} {r.choice(LAST)}"
        return f"{col[:3].upper()}{r.randrange(1, 40):02d}"

    def build(self, names: list[str]) -> dict[str, list[Row]]:
        special = {"District": self.district, "School": self.school, "Calendar": self.calendar,
                   "ScheduleStructure": self.schedulestructure,
                   "StructureGradeLevel": self.structuregradelevel, "PersonIdentity": self.personidentity,
                   "Enrollment": self.enrollment, "Test": self.test, "TestScore": self.testscore,
                   "AttDayAggregation": self.attdayaggregation}
        for name in names:
            spec = self.g.spec(name)
            self.rng = self._rng_for(name)  # each object its own sequence: adding one shifts no other
            if name == "PersonIdentityNoStateIDOnly":
                self.rows[name] = []  # read from PersonIdentity by its extract query
            else:
                self.rows[name] = special[name]() if name in special else self.generic(spec)
            self._classify(name)
        return self.rows


def _needed(graph: Hierarchy, state: str) -> list[str]:
    """Objects enabled for the state, plus any ancestor the generator needs (run order)."""
    names = set(graph.enabled(state))
    for n in list(names):
        names.update(graph.ancestors(n))
    return [n for n in graph.names if n in names]


def seed_district(conn: psycopg.Connection, graph: Hierarchy, district: District, index: int,
                  students: int, seed: int, end_year: int, state: str) -> dict[str, int]:
    """Replace the demo district's rows; return rows written per object."""
    names = _needed(graph, state)
    ensure_district_schema(conn, graph)
    gen = Generator(graph, district, index, students, seed, end_year, state)
    rows = gen.build(names)
    counts: dict[str, int] = {}
    with conn.transaction():
        for name in reversed(graph.names):
            conn.execute(sql.SQL("TRUNCATE {}").format(table(DISTRICT_SCHEMA, graph.spec(name))))
        _seed_attendance(conn, gen.attendance)
        for name in names:
            spec = graph.spec(name)
            cols = sql.SQL(", ").join(ident(c) for c in spec.column_names)
            with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
                    table(DISTRICT_SCHEMA, spec), cols)) as cp:
                for r in rows[name]:
                    cp.write_row([r[c] for c in spec.column_names])
            counts[name] = len(rows[name])
    edfi_demo_data.seed(conn, district.id)  # the Ed-Fi Resync's district-side rows (Ed-Fi IDs, sections...)
    return counts


def iter_districts(config: Config, n: int | None) -> Iterator[tuple[int, District]]:
    districts = config.districts
    if n is not None and n > len(districts):
        raise ValueError(f"--districts {n}: only {len(districts)} districts are configured in {config.source}")
    yield from enumerate(districts[: n or len(districts)])


def _seed_attendance(conn: psycopg.Connection, records: list[Row]) -> None:
    """The district-only daily attendance, and the demo's refresh routine when there is any
    (include/sql/demo/attendance_refresh.sql; a real district has its own)."""
    conn.execute("TRUNCATE campus.attendance")
    if not records:
        return
    from campus_sync.tools import attendance

    conn.execute(attendance.demo_routine_sql())
    cols = sql.SQL(", ").join(ident(c) for c in ATTENDANCE_COLUMNS)
    with conn.cursor().copy(sql.SQL("COPY campus.attendance ({}) FROM STDIN").format(cols)) as cp:
        for r in records:
            cp.write_row([r[c] for c in ATTENDANCE_COLUMNS])
