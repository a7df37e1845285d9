-- VaccineShot: Individual vaccine doses.
-- Every row of the district; the state accepts them all.
SELECT shotID,
       personID,
       vaccine,
       shotDate,
       NULL::text AS reject_reason
  FROM campus.vaccineshot
