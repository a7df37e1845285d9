-- FRYSCGroupProgramKY: Kentucky Family Resource and Youth Services Center group programs.
-- Every row of the district; the state accepts them all.
SELECT groupProgramID,
       personID,
       name,
       startDate,
       NULL::text AS reject_reason
  FROM campus.fryscgroupprogramky
