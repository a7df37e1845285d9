-- HealthScreening: Health screenings (vision, hearing, dental) and their results.
-- Every row of the district; the state accepts them all.
SELECT screeningID,
       personID,
       screeningType,
       screeningDate,
       result,
       NULL::text AS reject_reason
  FROM campus.healthscreening
