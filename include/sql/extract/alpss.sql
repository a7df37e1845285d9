-- ALPSS: Alternative learning program (ALPSS) participation.
-- Every row of the district; the state accepts them all.
SELECT alpssID,
       personID,
       programCode,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.alpss
