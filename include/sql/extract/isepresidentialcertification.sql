-- ISEPResidentialCertification: BIE Indian School Equalization Program residential certification.
-- Every row of the district; the state accepts them all.
SELECT certificationID,
       personID,
       certifiedDate,
       status,
       NULL::text AS reject_reason
  FROM campus.isepresidentialcertification
