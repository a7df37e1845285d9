-- Employment: A staff person's district employment record.
-- Every row of the district; the state accepts them all.
SELECT employmentID,
       personID,
       title,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.employment
