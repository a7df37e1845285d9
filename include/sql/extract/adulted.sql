-- AdultEd: Adult education program participation.
-- Every row of the district; the state accepts them all.
SELECT adultEdID,
       personID,
       programCode,
       startDate,
       endDate,
       NULL::text AS reject_reason
  FROM campus.adulted
