-- NASIS: Native American Student Information System tribal data (BIE).
-- Every row of the district; the state accepts them all.
SELECT nasisID,
       personID,
       tribeCode,
       tribalEnrollmentNumber,
       NULL::text AS reject_reason
  FROM campus.nasis
