-- CTEDataME: Maine career and technical education participation.
-- Every row of the district (the engine keeps only rows of the requested endYear); the state accepts them all.
SELECT cteID,
       personID,
       endYear,
       programCode,
       concentrator,
       NULL::text AS reject_reason
  FROM campus.ctedatame
