-- Truancy: Truancy notices.
-- Every row of the district; the state accepts them all.
SELECT truancyID,
       personID,
       noticeDate,
       noticeType,
       NULL::text AS reject_reason
  FROM campus.truancy
