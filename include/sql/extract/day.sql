-- Day: Instructional and attendance days of a calendar's schedule structure.
-- Every row of the district (the engine keeps only rows of the requested endYear); the state accepts them all.
SELECT dayID,
       calendarID,
       structureID,
       endYear,
       date,
       instruction,
       attendance,
       NULL::text AS reject_reason
  FROM campus.day
