-- FRYSCGroupStatusKY: A person's status in a Kentucky FRYSC group program.
-- Every row of the district; the state accepts them all.
SELECT groupStatusID,
       groupProgramID,
       personID,
       status,
       NULL::text AS reject_reason
  FROM campus.fryscgroupstatusky
