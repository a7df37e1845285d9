-- Form: Completed forms attached to a person.
-- Every row of the district; the state accepts them all.
SELECT formID,
       personID,
       formType,
       completedDate,
       NULL::text AS reject_reason
  FROM campus.form
