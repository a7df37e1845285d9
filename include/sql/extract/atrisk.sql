-- AtRisk: At-risk student indicators.
-- Every row of the district; the state accepts them all.
SELECT atRiskID,
       personID,
       riskType,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.atrisk
