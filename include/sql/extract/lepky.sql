-- LEPKY: Kentucky English learner (LEP) program status.
-- Every row of the district; the state accepts them all.
SELECT lepID,
       personID,
       programStatus,
       identifiedDate,
       exitDate,
       NULL::text AS reject_reason
  FROM campus.lepky
