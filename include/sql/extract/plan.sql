-- Plan: Special education and other student plans (IEP, 504, ...).
-- Every row of the district; the state accepts them all.
SELECT planID,
       personID,
       planType,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.plan
