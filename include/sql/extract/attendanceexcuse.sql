-- AttendanceExcuse: Attendance excuse codes a calendar uses (BIE and Nevada only).
-- Every row of the district (the engine keeps only rows of the requested endYear); the state accepts them all.
SELECT excuseID,
       calendarID,
       endYear,
       code,
       description,
       status,
       stateCode,
       NULL::text AS reject_reason
  FROM campus.attendanceexcuse
