-- District-side data the Ed-Fi Resync needs and the Campus hierarchy does not carry: Ed-Fi IDs of
-- people, terms (Ed-Fi sessions), courses, sections with their teacher, section rosters and
-- staff school assignments. Schema campus_edfi in each district database; never synced to the
-- state. Idempotent. Read by include/sql/edfi/<resource>.sql.
CREATE SCHEMA IF NOT EXISTS campus_edfi;

-- A person's Ed-Fi ID (Campus: Demographics > Ed-Fi ID). A person without a row, or with a NULL
-- ID, is not sent to Ed-Fi (reason no_edfi_id).
CREATE TABLE IF NOT EXISTS campus_edfi.person_edfi_id (
    personid   bigint PRIMARY KEY,
    edfiid     text
);

-- A term of a calendar: an Ed-Fi session.
CREATE TABLE IF NOT EXISTS campus_edfi.term (
    termid            bigint PRIMARY KEY,
    calendarid        bigint NOT NULL,
    name              text NOT NULL,
    termcode          text NOT NULL,
    startdate         date NOT NULL,
    enddate           date NOT NULL,
    instructionaldays integer NOT NULL
);
CREATE INDEX IF NOT EXISTS term_calendarid_idx ON campus_edfi.term (calendarid);

-- A course of a calendar: an Ed-Fi course (at the school) and its offering per term.
CREATE TABLE IF NOT EXISTS campus_edfi.course (
    courseid    bigint PRIMARY KEY,
    calendarid  bigint NOT NULL,
    number      text NOT NULL,
    name        text NOT NULL,
    subjectcode text
);
CREATE INDEX IF NOT EXISTS course_calendarid_idx ON campus_edfi.course (calendarid);

-- A section of a course in one term, with its teacher of record.
CREATE TABLE IF NOT EXISTS campus_edfi.section (
    sectionid       bigint PRIMARY KEY,
    courseid        bigint NOT NULL,
    termid          bigint NOT NULL,
    number          text NOT NULL,
    teacherpersonid bigint,
    startdate       date
);
CREATE INDEX IF NOT EXISTS section_courseid_idx ON campus_edfi.section (courseid);

-- A student's placement in a section.
CREATE TABLE IF NOT EXISTS campus_edfi.roster (
    rosterid   bigint PRIMARY KEY,
    sectionid  bigint NOT NULL,
    personid   bigint NOT NULL,
    startdate  date NOT NULL,
    enddate    date
);
CREATE INDEX IF NOT EXISTS roster_sectionid_idx ON campus_edfi.roster (sectionid);
CREATE INDEX IF NOT EXISTS roster_personid_idx ON campus_edfi.roster (personid);

-- A staff person's assignment to a school.
CREATE TABLE IF NOT EXISTS campus_edfi.staff_assignment (
    assignmentid       bigint PRIMARY KEY,
    personid           bigint NOT NULL,
    schoolid           bigint NOT NULL,
    classificationcode text NOT NULL,
    startdate          date NOT NULL,
    enddate            date
);
