-- POSEligibility: Point-of-sale (meal benefits) eligibility.
-- Every row of the district; the state accepts them all.
SELECT eligibilityID,
       personID,
       eligibility,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.poseligibility
