-- AttendanceExactCount: Exact present/absent counts per enrollment.
-- Every row of the district (the engine keeps only rows of the requested endYear); the state accepts them all.
SELECT enrollmentID,
       personID,
       calendarID,
       endYear,
       presentDays,
       absentDays,
       NULL::text AS reject_reason
  FROM campus.attendanceexactcount
