-- ImmCertificate: Immunization certificates.
-- Every row of the district; the state accepts them all.
SELECT certificateID,
       personID,
       certificateType,
       issueDate,
       NULL::text AS reject_reason
  FROM campus.immcertificate
