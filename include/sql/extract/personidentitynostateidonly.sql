-- PersonIdentityNoStateIDOnly: the identities of people the state has not given a state ID yet.
-- Read from the district's person identities (the object is a subset of PersonIdentity).
SELECT personID, lastName, firstName, gender, birthDate,
       NULL::text AS reject_reason
  FROM campus.personidentity
 WHERE stateID IS NULL
