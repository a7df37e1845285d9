-- EmploymentCredential: A staff person's certificates and licenses.
-- Every row of the district; the state accepts them all.
SELECT credentialID,
       personID,
       credentialType,
       issueDate,
       expirationDate,
       NULL::text AS reject_reason
  FROM campus.employmentcredential
