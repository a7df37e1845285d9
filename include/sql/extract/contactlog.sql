-- ContactLog: Logged contacts with a person or family.
-- Every row of the district; the state accepts them all.
SELECT contactLogID,
       personID,
       contactDate,
       contactType,
       NULL::text AS reject_reason
  FROM campus.contactlog
