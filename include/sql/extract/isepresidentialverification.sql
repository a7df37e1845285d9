-- ISEPResidentialVerification: BIE Indian School Equalization Program residential verification.
-- Every row of the district; the state accepts them all.
SELECT verificationID,
       personID,
       verifiedDate,
       status,
       NULL::text AS reject_reason
  FROM campus.isepresidentialverification
