-- SchoolMonth: Attendance reporting months of a calendar.
-- Every row of the district (the engine keeps only rows of the requested endYear); the state accepts them all.
SELECT monthID,
       calendarID,
       endYear,
       name,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.schoolmonth
