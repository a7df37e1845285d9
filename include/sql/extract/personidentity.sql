-- PersonIdentity: A person's identity (name, birth date, gender, state ID).
-- Every row of the district; the state accepts them all.
SELECT personID,
       stateID,
       lastName,
       firstName,
       middleName,
       gender,
       birthDate,
       raceEthnicity,
       NULL::text AS reject_reason
  FROM campus.personidentity
