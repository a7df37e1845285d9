-- ESSKY: Kentucky extended school services.
-- Every row of the district; the state accepts them all.
SELECT essID,
       enrollmentID,
       personID,
       serviceType,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.essky
