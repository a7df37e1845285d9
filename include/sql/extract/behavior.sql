-- Behavior: Behavior events and the student's role in them.
-- Every row of the district (the engine keeps only rows of the requested endYear); the state accepts them all.
SELECT behaviorID,
       personID,
       calendarID,
       endYear,
       incidentDate,
       eventCode,
       role,
       NULL::text AS reject_reason
  FROM campus.behavior
