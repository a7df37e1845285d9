-- Title1KY: Kentucky Title I services.
-- Every row of the district; the state accepts them all.
SELECT title1ID,
       enrollmentID,
       personID,
       serviceType,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.title1ky
