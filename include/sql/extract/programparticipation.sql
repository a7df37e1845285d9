-- ProgramParticipation: Participation in district and state programs.
-- Every row of the district; the state accepts them all.
SELECT participationID,
       personID,
       programCode,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.programparticipation
