-- Roster: A student's placement in course sections.
-- Every row of the district (the engine keeps only rows of the requested endYear); the state accepts them all.
SELECT rosterID,
       enrollmentID,
       personID,
       sectionID,
       gradeLevelID,
       endYear,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.roster
