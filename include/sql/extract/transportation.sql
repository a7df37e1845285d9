-- Transportation: Bus routes and transportation eligibility.
-- Every row of the district; the state accepts them all.
SELECT transportationID,
       personID,
       busNumber,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.transportation
