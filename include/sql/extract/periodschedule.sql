-- PeriodSchedule: The period schedule of a schedule structure.
-- Every row of the district (the engine keeps only rows of the requested endYear); the state accepts them all.
SELECT periodScheduleID,
       structureID,
       endYear,
       name,
       periodCount,
       NULL::text AS reject_reason
  FROM campus.periodschedule
