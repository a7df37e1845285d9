-- EmploymentBackground: A staff person's education background.
-- Every row of the district; the state accepts them all.
SELECT backgroundID,
       personID,
       degree,
       institution,
       degreeDate,
       NULL::text AS reject_reason
  FROM campus.employmentbackground
