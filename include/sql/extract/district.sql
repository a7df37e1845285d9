-- District: The district itself; the root every district record hangs from.
-- Every row of the district; the state accepts them all.
SELECT districtID,
       number,
       name,
       stateCode,
       NULL::text AS reject_reason
  FROM campus.district
