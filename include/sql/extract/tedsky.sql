-- TEDSKY: Kentucky TEDS (technical education) records.
-- Every row of the district; the state accepts them all.
SELECT tedsID,
       personID,
       programCode,
       status,
       NULL::text AS reject_reason
  FROM campus.tedsky
