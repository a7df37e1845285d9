-- CensusContactSummary: A person's relationships and contacts (guardians, emergency contacts).
-- Every row of the district; the state accepts them all.
SELECT contactSummaryID,
       personID,
       relatedPersonID,
       relationship,
       guardian,
       NULL::text AS reject_reason
  FROM campus.censuscontactsummary
