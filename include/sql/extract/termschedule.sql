-- TermSchedule: The term schedule of a schedule structure.
-- Every row of the district (the engine keeps only rows of the requested endYear); the state accepts them all.
SELECT termScheduleID,
       structureID,
       endYear,
       name,
       termCount,
       NULL::text AS reject_reason
  FROM campus.termschedule
