-- TeamMember: Members of a student's team (case managers, counselors).
-- Every row of the district; the state accepts them all.
SELECT teamMemberID,
       personID,
       staffPersonID,
       role,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.teammember
