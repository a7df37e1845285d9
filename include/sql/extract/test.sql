-- Test: Assessment definitions (state/national code, publication, district lock).
-- Every row of the district; the state accepts them all.
SELECT testID,
       name,
       stateCode,
       nationalCode,
       published,
       editNotAvailable,
       endYear,
       NULL::text AS reject_reason
  FROM campus.test
